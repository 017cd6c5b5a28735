-- Move a session to a new token: its record goes to the new token's key and
-- the old key is deleted at once. A JWT-mode session becomes opaque: its
-- refresh state goes too.
-- KEYS: new record key, tag index.
-- ARGV: base, now, retention, mode ('id' | 'token'), then the id's random part (mode
-- 'id') or the presented token's th (mode 'token': the record must still be
-- under it, so of concurrent rotations presenting it exactly one wins).
-- Returns {'record', bytes} or {'none'}.
local base, now, mode, target = ARGV[1], tonumber(ARGV[2]), ARGV[4], ARGV[5]

local old
if mode == 'token' then
  old = rkey(base, target)
else
  local m = find(base, target)
  if not m then return { 'none' } end
  old = rkey(base, th_of_member(m))
end
local r = load(base, old, now)
if not r then return { 'none' } end
if r.bad then return { 'record', r.raw } end

remove(base, old, r)
if r[F_MODE] ~= '' then
  r[F_MODE] = ''
  for f = F_RT, F_RH, -1 do r[f] = nil end
end
local raw = save_with_deadline(base, KEYS[1], r, r[F_EXP], now)
emit(base, 'rotated', r, nil, now)
return { 'record', raw }
