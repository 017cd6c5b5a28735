-- The live sessions of a tag's users (the client keeps those of the user
-- it asked for, and sorts them).
-- KEYS: tag index. ARGV: base, now, retention.
-- Returns {'records', bytes...}.
local base, now = ARGV[1], tonumber(ARGV[2])

local out = { 'records' }
for _, s in ipairs(live(base, now)) do out[#out + 1] = s.r.raw end
return out
