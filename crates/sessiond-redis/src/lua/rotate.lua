-- Give a session a new token hash; the old token key goes at once. A
-- JWT-mode session becomes opaque: its refresh state goes too.
-- KEYS: new token key, then the session hash (mode 'id') or the presented
-- token's key (mode 'token').
-- ARGV: base, now, new token hash, mode, session id (mode 'id') or the
-- presented token hash (mode 'token': compare-and-swap on `th`).
-- Returns {'session', id, packed fields} or {'none'}.
local base, now, new_th, mode, target = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]

local id = target
if mode == 'token' then
  id = redis.call('GET', KEYS[2])
  if not id then return { 'none' } end
end
local rec = load(base, id, now)
if not rec then return { 'none' } end
if mode == 'token' and rec.h.th ~= target then return { 'none' } end
if not rec.exp then return { 'session', id, packed(rec.flat) } end

if rec.h.th then redis.call('DEL', tkey(base, rec.h.th)) end
redis.call('HSET', skey(base, id), 'th', new_th)
redis.call('SET', KEYS[1], id, 'PX', rec.exp - now)
if rec.h.md then
  redis.call('HDEL', skey(base, id), 'md', 'rh', 'rp', 'rw', 'rg', 'rt')
  return { 'session', id, packed(redis.call('HGETALL', skey(base, id))) }
end
patch(rec.flat, 'th', new_th)
return { 'session', id, packed(rec.flat) }
