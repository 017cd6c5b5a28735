-- Create a session within its user's limit.
-- KEYS: record key, tag index.
-- ARGV: base, now, retention, user id, max, policy ('evict' | 'reject'),
-- record.
-- Returns {'created', evicted id...}, {'limit'}, or {'issued_before'} when
-- the session is older than its user's not-before mark.
local base, now, uid = ARGV[1], tonumber(ARGV[2]), ARGV[4]
local max, policy, raw = tonumber(ARGV[5]), ARGV[6], ARGV[7]

local r = cmsgpack.unpack(raw)
local mark = not_before(base, uid, now)
if mark and r[F_CA] < mark then return { 'issued_before' } end

local mine = {}
for _, s in ipairs(live(base, now)) do
  if s.r[F_UID] == uid then mine[#mine + 1] = s end
end
local out = { 'created' }
if #mine >= max then
  if policy == 'reject' then return { 'limit' } end
  table.sort(mine, function(a, b)
    if a.r[F_CA] ~= b.r[F_CA] then return a.r[F_CA] < b.r[F_CA] end
    return full_id(base, a.r) < full_id(base, b.r)
  end)
  for n = 1, #mine - max + 1 do
    remove(base, mine[n].key, mine[n].r)
    emit(base, 'revoked', mine[n].r, 'evicted_max_sessions', now)
    out[#out + 1] = full_id(base, mine[n].r)
  end
end

local ttl = r[F_EXP] - now
if ttl <= 0 then
  reindex(base)
  return out -- born dead: nothing to keep
end
redis.call('SET', KEYS[1], raw, 'PX', ttl + EXPIRY_GRACE)
redis.call('ZADD', KEYS[2], r[F_EXP], member_of(r, KEYS[1]))
stretch_index(KEYS[2], ttl)
reindex(base)
emit(base, 'created', r, nil, now)
return out
