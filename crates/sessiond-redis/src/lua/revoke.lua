-- Remove a session.
-- KEYS: tag index. ARGV: base, now, the id's random part.
-- Returns 1 if a live session was removed, else 0.
local base, now = ARGV[1], tonumber(ARGV[2])

local m = find(base, ARGV[3])
if not m then return 0 end
local k = rkey(base, th_of_member(m))
local r = load(base, k, now)
if not r then
  redis.call('ZREM', KEYS[1], m)
  return 0
end
redis.call('DEL', k)
redis.call('ZREM', KEYS[1], m)
return 1
