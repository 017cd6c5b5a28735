-- Rotate the refresh token of a JWT-mode session, found by its family key.
-- KEYS: family key (base..'t:'..family hash).
-- ARGV: base, now, family hash, presented hash, successor hash, wrapped
-- successor (base64url), reuse grace ms.
-- Returns {'rotated', id, packed fields, generation}
--      or {'replayed', id, packed fields, generation, rotated_at, wrapped}
--      or {'reused', id} (the session is gone) or {'unknown'}.
local base, now, family, presented = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local successor, wrapped, grace = ARGV[5], ARGV[6], tonumber(ARGV[7])

local id = redis.call('GET', KEYS[1])
if not id then return { 'unknown' } end
local rec = load(base, id, now)
if not rec or rec.h.th ~= family or rec.h.md ~= 'jwt' then
  if not rec or rec.h.th ~= family then redis.call('DEL', KEYS[1]) end
  return { 'unknown' }
end
local gen, rotated_at = tonumber(rec.h.rg), tonumber(rec.h.rt)
if not (rec.exp and gen and rotated_at and rec.h.rh) then
  -- Undecodable refresh state: change nothing, let the client report it.
  return { 'rotated', id, packed(rec.flat), 'corrupt' }
end

if rec.h.rh == presented then
  gen = gen + 1
  redis.call('HSET', skey(base, id), 'rp', presented, 'rh', successor, 'rw', wrapped,
    'rg', int(gen), 'rt', ARGV[2], 'ls', ARGV[2])
  patch(rec.flat, 'ls', ARGV[2])
  local idle = tonumber(rec.h.ttl)
  if idle then
    local exp = math.max(rec.exp, math.min(now + idle, rec.abs))
    if exp ~= rec.exp then set_deadline(base, id, rec, exp, now) end
  end
  return { 'rotated', id, packed(rec.flat), int(gen) }
end

if rec.h.rp == presented and rec.h.rw and now < rotated_at + grace then
  return { 'replayed', id, packed(rec.flat), int(gen), int(rotated_at), rec.h.rw }
end

-- A retired token of this family, past its grace: someone else holds the
-- chain. End the session.
remove(base, id, rec.h.th, rec.h.uid and ukey(base, rec.h.uid))
return { 'reused', id }
