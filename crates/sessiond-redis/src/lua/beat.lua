-- Register a connection on a live session or keep it alive: it ends by
-- itself `ttl` ms after this beat, never after the session's deadline.
-- A connection is {node or false, opened at, last seen, expires at}.
-- KEYS: tag index. ARGV: base, now, retention, the id's random part,
-- connection id, node ('' = none, or keep the one it has), ttl ms.
-- Returns {'beat', opened (0 | 1), node, opened at, last seen, expires at}
-- or {'none'}.
local base, now = ARGV[1], tonumber(ARGV[2])
local idr, cid, node, ttl = ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])

local m = find(base, idr)
if not m then return { 'none' } end
local r = load(base, rkey(base, th_of_member(m)), now)
if not r or r.bad then return { 'none' } end

local field = idr .. cid
local exp = math.min(now + ttl, r[F_EXP], r[F_ABS])
local old = redis.call('HGET', ckey(base), field)
local c = old and cmsgpack.unpack(old)
local opened = 0
if c and c[4] > now then
  if node ~= '' then c[1] = node end
  c[3], c[4] = now, exp
else
  if c then emit(base, 'connection_closed', r, 'expired', c[4]) end
  c = { false, now, now, exp }
  if node ~= '' then c[1] = node end
  opened = 1
  emit(base, 'connection_opened', r, nil, now)
end
redis.call('HSET', ckey(base), field, cmsgpack.pack(c))
redis.call('ZADD', kkey(base), exp, field)
local keep = r[F_EXP] - now + EXPIRY_GRACE
stretch(ckey(base), keep)
stretch(kkey(base), keep)
reindex(base)
return { 'beat', opened, c[1], c[2], c[3], c[4] }
