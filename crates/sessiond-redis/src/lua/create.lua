-- Create a session within the user's limit.
-- KEYS: session hash, token key, user index.
-- ARGV: base, now, id, exp, max, policy ('evict' | 'reject'), then the
-- hash's field/value pairs.
-- Returns {'created', evicted id...} or {'limit'}.
local base, now, id = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local exp, max, policy = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local s, t, u = KEYS[1], KEYS[2], KEYS[3]

local live = prune(base, u, now)
local out = { 'created' }
if #live >= max then
  if policy == 'reject' then return { 'limit' } end
  table.sort(live, function(a, b)
    if a.ca ~= b.ca then return a.ca < b.ca end
    return a.id < b.id
  end)
  for i = 1, #live - max + 1 do
    remove(base, live[i].id, live[i].th, u)
    out[#out + 1] = live[i].id
  end
end

local ttl = exp - now
if ttl <= 0 then return out end -- born dead: nothing to keep
call_chunked('HSET', s, ARGV, 7)
redis.call('PEXPIRE', s, ttl)
redis.call('SET', t, id, 'PX', ttl)
redis.call('ZADD', u, exp, id)
stretch_index(u, ttl)
return out
