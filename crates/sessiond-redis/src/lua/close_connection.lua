-- Close a connection of a live session.
-- KEYS: tag index. ARGV: base, now, retention, the id's random part,
-- connection id.
-- Returns 1 if a live connection was closed, else 0.
local base, now, idr, cid = ARGV[1], tonumber(ARGV[2]), ARGV[4], ARGV[5]

local m = find(base, idr)
if not m then return 0 end
local r = load(base, rkey(base, th_of_member(m)), now)
if not r or r.bad then return 0 end
local field = idr .. cid
local old = redis.call('HGET', ckey(base), field)
if not old then return 0 end
local c = cmsgpack.unpack(old)
redis.call('HDEL', ckey(base), field)
redis.call('ZREM', kkey(base), field)
reindex(base)
if c[4] <= now then
  -- It had expired already; the sweep had not recorded it yet.
  emit(base, 'connection_closed', r, 'expired', c[4])
  return 0
end
emit(base, 'connection_closed', r, 'closed', now)
return 1
