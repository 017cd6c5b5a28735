-- A user's live sessions (unordered: the client sorts them).
-- KEYS: user index. ARGV: base, now.
-- Returns {'sessions', id, fields, id, fields...}.
local base, now = ARGV[1], tonumber(ARGV[2])

local out = { 'sessions' }
for _, s in ipairs(prune(base, KEYS[1], now)) do
  out[#out + 1] = s.id
  out[#out + 1] = redis.call('HGETALL', skey(base, s.id))
end
return out
