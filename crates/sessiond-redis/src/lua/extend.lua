-- Push a session's idle deadline to max(exp, min(now + idle, abs)), where
-- idle is the given ttl or, if none, the session's own.
-- KEYS: session hash. ARGV: base, now, id, idle ttl ms ('' = the session's).
-- Returns {'session', id, packed fields} or {'none'}.
local base, now, id = ARGV[1], tonumber(ARGV[2]), ARGV[3]

local rec = load(base, id, now)
if not rec then return { 'none' } end
local idle = tonumber(ARGV[4]) or tonumber(rec.h.ttl)
if rec.exp and idle then
  local exp = math.max(rec.exp, math.min(now + idle, rec.abs))
  if exp ~= rec.exp then set_deadline(base, id, rec, exp, now) end
end
return { 'session', id, packed(rec.flat) }
