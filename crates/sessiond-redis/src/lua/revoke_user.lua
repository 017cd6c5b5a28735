-- Remove all of a user's live sessions but one.
-- KEYS: user index. ARGV: base, now, id to spare ('' = none).
-- Returns the removed ids.
local base, now, except = ARGV[1], tonumber(ARGV[2]), ARGV[3]

local out = {}
for _, s in ipairs(prune(base, KEYS[1], now)) do
  if s.id ~= except then
    remove(base, s.id, s.th, KEYS[1])
    out[#out + 1] = s.id
  end
end
return out
