-- Push a session's idle deadline to max(exp, min(now + idle, abs)), where
-- idle is the given ttl or, if none, the session's own.
-- KEYS: tag index. ARGV: base, now, retention, the id's random part, idle
-- ttl ms ('' = the session's).
-- Returns {'record', bytes} or {'none'}.
local base, now = ARGV[1], tonumber(ARGV[2])

local m = find(base, ARGV[4])
if not m then return { 'none' } end
local k = rkey(base, th_of_member(m))
local r = load(base, k, now)
if not r then return { 'none' } end
if r.bad then return { 'record', r.raw } end
local idle = tonumber(ARGV[5]) or r[F_TTL]
local exp = math.max(r[F_EXP], math.min(now + idle, r[F_ABS]))
if exp == r[F_EXP] then return { 'record', r.raw } end
local raw = save_with_deadline(base, k, r, exp, now)
emit(base, 'extended', r, nil, now)
return { 'record', raw }
