-- Merge into or replace a session's data, within a size limit. Data is the
-- record's flat list of keys and compact-JSON values; size = key bytes +
-- value bytes, as sessiond_engine::data_size measures it (a value sealed at
-- rest, '"sdenc:<len>:…"', counts its plaintext's <len>). Expiry and TTL
-- are unchanged.
-- KEYS: tag index. ARGV: base, now, retention, the id's random part, max
-- bytes, mode ('merge' | 'replace'), then key/value pairs (in a merge, ''
-- deletes the key).
-- Returns {'record', bytes}, {'none'} or {'too_large', size}.
local base, now = ARGV[1], tonumber(ARGV[2])
local max, mode = tonumber(ARGV[5]), ARGV[6]

local m = find(base, ARGV[4])
if not m then return { 'none' } end
local k = rkey(base, th_of_member(m))
local r = load(base, k, now)
if not r then return { 'none' } end
if r.bad then return { 'record', r.raw } end

local data = {}
if mode == 'merge' then
  local pairs_ = r[F_DATA]
  for n = 1, #pairs_, 2 do data[pairs_[n]] = pairs_[n + 1] end
end
for n = 7, #ARGV, 2 do
  if ARGV[n + 1] == '' then data[ARGV[n]] = nil else data[ARGV[n]] = ARGV[n + 1] end
end
local function value_len(value)
  local sealed = string.match(value, '^"sdenc:(%d+):')
  return tonumber(sealed) or #value
end
local keys, size = {}, 0
for key, value in pairs(data) do
  keys[#keys + 1] = key
  size = size + #key + value_len(value)
end
if size > max then return { 'too_large', size } end
table.sort(keys)
local flat = {}
for _, key in ipairs(keys) do
  flat[#flat + 1] = key
  flat[#flat + 1] = data[key]
end
r[F_DATA] = flat
local raw = save(k, r, now)
emit(base, 'data_updated', r, nil, now)
return { 'record', raw }
