-- A live session by id.
-- KEYS: session hash. ARGV: base, now, id.
-- Returns {'session', id, packed fields} or {'none'}.
local rec = load(ARGV[1], ARGV[3], tonumber(ARGV[2]))
if not rec then return { 'none' } end
return { 'session', ARGV[3], packed(rec.flat) }
