-- Remove a session.
-- KEYS: tag index. ARGV: base, now, retention, the id's random part,
-- reason.
-- Returns 1 if a live session was removed, else 0.
local base, now = ARGV[1], tonumber(ARGV[2])

local m = find(base, ARGV[4])
if not m then return 0 end
local k = rkey(base, th_of_member(m))
local r = load(base, k, now)
if not r then
  redis.call('ZREM', KEYS[1], m)
  drop_connections(base, ARGV[4])
  reindex(base)
  return 0
end
if r.bad then
  redis.call('DEL', k)
  redis.call('ZREM', KEYS[1], m)
  drop_connections(base, ARGV[4])
  reindex(base)
  return 1
end
remove(base, k, r)
reindex(base)
emit(base, 'revoked', r, ARGV[5], now)
return 1
