-- Merge into or replace a session's data, within a size limit. Data lives in
-- '.<key>' fields holding compact JSON; size = key bytes + value bytes, as
-- sessiond_engine::data_size measures it. HSET/HDEL keep the key's TTL.
-- KEYS: session hash. ARGV: base, now, id, max bytes, mode ('merge' |
-- 'replace'), then field/value pairs (in a merge, '' deletes the field).
-- Returns {'session', id, packed fields}, {'none'} or {'too_large', size}.
local base, now, id = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local max, mode = tonumber(ARGV[4]), ARGV[5]
local s = KEYS[1]
local first = 6

local rec = load(base, id, now)
if not rec then return { 'none' } end
if not rec.exp then return { 'session', id, packed(rec.flat) } end

local current, result = {}, {}
for i = 1, #rec.flat, 2 do
  local f = rec.flat[i]
  if string.sub(f, 1, 1) == '.' then
    current[#current + 1] = f
    if mode == 'merge' then result[f] = #rec.flat[i + 1] end
  end
end
local sets, dels = {}, {}
for i = first, #ARGV, 2 do
  local f, v = ARGV[i], ARGV[i + 1]
  if v == '' then
    result[f] = nil
    dels[#dels + 1] = f
  else
    result[f] = #v
    sets[#sets + 1] = f
    sets[#sets + 1] = v
  end
end
local size = 0
for f, n in pairs(result) do size = size + #f - 1 + n end
if size > max then return { 'too_large', size } end

if mode == 'replace' then call_chunked('HDEL', s, current, 1) end
call_chunked('HDEL', s, dels, 1)
call_chunked('HSET', s, sets, 1)
return { 'session', id, packed(redis.call('HGETALL', s)) }
