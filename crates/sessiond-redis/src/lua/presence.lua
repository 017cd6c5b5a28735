-- A user's live sessions with their live connections.
-- KEYS: tag index. ARGV: base, now, retention, user id.
-- Returns {'presence', {record bytes, connection id, packed connection,
-- ...}...}.
local base, now, uid = ARGV[1], tonumber(ARGV[2]), ARGV[4]

local out = { 'presence' }
local conns = {}
for _, f in ipairs(redis.call('ZRANGEBYSCORE', kkey(base), '(' .. int(now), '+inf')) do
  local idr = string.sub(f, 1, ID_LEN)
  conns[idr] = conns[idr] or {}
  table.insert(conns[idr], f)
end
for _, s in ipairs(live(base, now)) do
  if s.r[F_UID] == uid then
    local entry = { s.r.raw }
    for _, f in ipairs(conns[s.r[F_ID]] or {}) do
      entry[#entry + 1] = string.sub(f, ID_LEN + 1)
      entry[#entry + 1] = redis.call('HGET', ckey(base), f)
    end
    out[#out + 1] = entry
  end
end
return out
