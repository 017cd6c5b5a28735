-- Remove a session.
-- KEYS: session hash. ARGV: base, now, id.
-- Returns 1 if a live session was removed, else 0.
local base, now, id = ARGV[1], tonumber(ARGV[2]), ARGV[3]

local rec = load(base, id, now)
if not rec then return 0 end
remove(base, id, rec.h.th, rec.h.uid and ukey(base, rec.h.uid))
return 1
