-- Retire the events of a bucket's stream older than the retention (by this
-- node's clock) or below a given id, remembering the newest one retired (a
-- reader whose next event is at or before it was too slow, and is told
-- so).
-- KEYS: stream, floor. ARGV: retention (microseconds), an id below which
-- events leave too ('' = none), how long the floor is kept (ms).
-- Returns the number of events retired.
local s, f = KEYS[1], KEYS[2]

local function parts(id)
  local us, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(us), tonumber(seq)
end
local function later(a, b)
  local aus, aseq = parts(a)
  local bus, bseq = parts(b)
  return aus > bus or (aus == bus and aseq > bseq)
end

local t = redis.call('TIME')
local age = tonumber(t[1]) * 1000000 + tonumber(t[2]) - tonumber(ARGV[1])
local cut = int(math.max(age, 0)) .. '-0'
if ARGV[2] ~= '' and later(ARGV[2], cut) then cut = ARGV[2] end

local last = redis.call('XREVRANGE', s, '(' .. cut, '-', 'COUNT', 1)[1]
if not last then return 0 end
local removed = redis.call('XTRIM', s, 'MINID', cut)
local keep = last[1]
local old = redis.call('GET', f)
if old and later(old, keep) then keep = old end
redis.call('SET', f, keep, 'PX', tonumber(ARGV[3]))
return removed
