-- A live session by id.
-- KEYS: tag index. ARGV: base, now, retention, the id's random part.
-- Returns {'record', bytes} or {'none'}.
local base, now = ARGV[1], tonumber(ARGV[2])

local m = find(base, ARGV[4])
if not m then return { 'none' } end
local r = load(base, rkey(base, th_of_member(m)), now)
if not r then return { 'none' } end
return { 'record', r.raw }
