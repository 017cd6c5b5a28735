-- Remove all of a user's live sessions but one.
-- KEYS: tag index. ARGV: base, now, user id, id to spare ('' = none).
-- Returns the removed ids.
local base, now, uid, except = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]

local out = {}
for _, s in ipairs(live(base, now)) do
  if s.r[F_UID] == uid and full_id(base, s.r) ~= except then
    remove(base, s.key, s.r)
    out[#out + 1] = full_id(base, s.r)
  end
end
return out
