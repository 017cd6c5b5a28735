-- Remove a user's live sessions created before a time (all but one), and
-- raise the user's not-before mark to that time so that create.lua refuses
-- older sessions from then on. The mark only moves forward; it lasts until
-- the later of its old and new ends.
-- KEYS: tag index, marks. ARGV: base, now, retention, user id, time (ms),
-- the mark's end (ms), id to spare ('' = none), reason.
-- Returns the removed ids.
local base, now, uid = ARGV[1], tonumber(ARGV[2]), ARGV[4]
local before, till, except = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]

local n = nkey(base)
local mark = before
local old_at, old_till = parse_mark(redis.call('HGET', n, uid))
if old_at then
  mark, till = math.max(mark, old_at), math.max(till, old_till)
end
if till > now then
  redis.call('HSET', n, uid, int(mark) .. ':' .. int(till))
  stretch(n, till - now)
else
  redis.call('HDEL', n, uid)
end
-- Shed the ended marks of the tag's other users.
local marks = redis.call('HGETALL', n)
for j = 1, #marks, 2 do
  local _, t = parse_mark(marks[j + 1])
  if not t or t <= now then redis.call('HDEL', n, marks[j]) end
end

local out = {}
for _, s in ipairs(live(base, now)) do
  if s.r[F_UID] == uid and s.r[F_CA] < before and full_id(base, s.r) ~= except then
    remove(base, s.key, s.r)
    emit(base, 'revoked', s.r, ARGV[8], now)
    out[#out + 1] = full_id(base, s.r)
  end
end
reindex(base)
return out
