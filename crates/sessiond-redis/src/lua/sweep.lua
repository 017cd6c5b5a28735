-- Remove the dead sessions of a bucket's tags whose next deadline passed,
-- recording each expiry, and close their expired connections (each
-- recorded as closed, dated by its expiry).
-- KEYS: the bucket's deadline set. ARGV: the bucket's key start, now,
-- retention, most tags to visit.
-- Returns the number of sessions removed.
local bucket, now = ARGV[1], tonumber(ARGV[2])

for _, tag in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))) do
  local base = bucket .. tag .. ':'
  local alive = {}
  for _, s in ipairs(live(base, now)) do alive[s.r[F_ID]] = s.r end
  local k = kkey(base)
  for _, f in ipairs(redis.call('ZRANGEBYSCORE', k, '-inf', now)) do
    local packed = redis.call('HGET', ckey(base), f)
    local r = alive[string.sub(f, 1, ID_LEN)]
    if packed and r then
      emit(base, 'connection_closed', r, 'expired', cmsgpack.unpack(packed)[4])
    end
    redis.call('HDEL', ckey(base), f)
    redis.call('ZREM', k, f)
  end
  reindex(base)
end
return EXPIRED
