-- Remove all of a user's live sessions but one.
-- KEYS: tag index. ARGV: base, now, retention, user id, id to spare ('' =
-- none), reason.
-- Returns the removed ids.
local base, now, uid, except = ARGV[1], tonumber(ARGV[2]), ARGV[4], ARGV[5]

local out = {}
for _, s in ipairs(live(base, now)) do
  if s.r[F_UID] == uid and full_id(base, s.r) ~= except then
    remove(base, s.key, s.r)
    emit(base, 'revoked', s.r, ARGV[6], now)
    out[#out + 1] = full_id(base, s.r)
  end
end
reindex(base)
return out
