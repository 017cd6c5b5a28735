-- Rotate the refresh token of a JWT-mode session, found by its family's
-- record key.
-- KEYS: family record key. ARGV: base, now, retention, presented hash,
-- successor hash, wrapped successor (base64url), reuse grace ms.
-- Returns {'rotated', bytes}
--      or {'replayed', bytes} (the record unchanged: its refresh state says
--         what the rotation produced)
--      or {'reused', id} (the session is gone) or {'unknown'}.
local base, now, presented = ARGV[1], tonumber(ARGV[2]), ARGV[4]
local successor, wrapped, grace = ARGV[5], ARGV[6], tonumber(ARGV[7])

local r = load(base, KEYS[1], now)
if not r then return { 'unknown' } end
if r.bad then return { 'rotated', r.raw } end
if r[F_MODE] ~= 'jwt' then return { 'unknown' } end

if r[F_RH] == presented then
  r[F_RP], r[F_RH], r[F_RW] = presented, successor, wrapped
  r[F_RG], r[F_RT], r[F_LS] = r[F_RG] + 1, now, now
  local raw = save_with_deadline(base, KEYS[1], r, slid(r, now), now)
  emit(base, 'refreshed', r, nil, now)
  return { 'rotated', raw }
end
if r[F_RP] == presented and r[F_RW] and now < r[F_RT] + grace then
  return { 'replayed', r.raw }
end
-- A retired token of this family, past its grace: someone else holds the
-- chain. End the session.
remove(base, KEYS[1], r)
reindex(base)
emit(base, 'revoked', r, 'refresh_token_reuse', now)
return { 'reused', full_id(base, r) }
