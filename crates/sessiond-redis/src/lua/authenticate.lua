-- Record a new authentication of a session's user: raise its level (never
-- lower it), add the method to its methods (each once, at most MAX_METHODS,
-- the oldest dropped), move authenticated_at to now. Token, data and
-- deadlines are unchanged. Event: 'authenticated', reason the method.
-- KEYS: tag index. ARGV: base, now, retention, the id's random part, level
-- (1..3), method.
-- Returns {'record', bytes} or {'none'}.
local base, now = ARGV[1], tonumber(ARGV[2])
local level, method = tonumber(ARGV[5]), ARGV[6]
local MAX_METHODS = 16

local m = find(base, ARGV[4])
if not m then return { 'none' } end
local k = rkey(base, th_of_member(m))
local r = load(base, k, now)
if not r then return { 'none' } end
if r.bad then return { 'record', r.raw } end
r[F_AT] = math.max(now - r[F_CA], r[F_AT])
if level > r[F_AAL] then r[F_AAL] = level end
local amr, seen = {}, false
for _, x in ipairs(r[F_AMR]) do
  amr[#amr + 1] = x
  if x == method then seen = true end
end
if not seen then amr[#amr + 1] = method end
while #amr > MAX_METHODS do table.remove(amr, 1) end
r[F_AMR] = amr
local raw = save(k, r, now)
emit(base, 'authenticated', r, method, now)
return { 'record', raw }
