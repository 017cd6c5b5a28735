-- Retire the events of a bucket's stream below an id, remembering the
-- newest one retired (a reader whose next event is at or before it was
-- too slow, and is told so).
-- KEYS: stream, floor. ARGV: the lowest id kept, how long the floor is
-- kept (ms).
-- Returns the number of events retired.
local s, f, cut = KEYS[1], KEYS[2], ARGV[1]

local last = redis.call('XREVRANGE', s, '(' .. cut, '-', 'COUNT', 1)[1]
if not last then return 0 end
local removed = redis.call('XTRIM', s, 'MINID', cut)
local function parts(id)
  local us, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(us), tonumber(seq)
end
local old = redis.call('GET', f)
local keep = last[1]
if old then
  local ous, oseq = parts(old)
  local nus, nseq = parts(keep)
  if ous > nus or (ous == nus and oseq > nseq) then keep = old end
end
redis.call('SET', f, keep, 'PX', tonumber(ARGV[2]))
return removed
