-- Helpers shared by every sessiond script (prepended to each one).
--
-- Key schema (version 3). A user's keys and its bucket's keys share the
-- bucket as hash tag; `base` is '<prefix>v3:{<bucket>}:<shard tag>:' and
-- arrives in ARGV[1]:
--   base..'r:'..th   STRING  a session record (MessagePack, see record.rs)
--                            of the token (or refresh family) whose hash
--                            starts with th (32 base64url characters)
--   base..'i'        ZSET    one member per session: the random part of
--                            its id (22 characters) then th; scored by the
--                            session's idle deadline
--   base..'c'        HASH    live connections: the id's random part then
--                            the connection id -> packed connection
--   base..'k'        ZSET    the same members scored by their expiry
--   base..'n'        HASH    not-before marks: user id -> 'at:end' (ms);
--                            a create of a session older than `at` is
--                            refused until `end`; the key's TTL is the
--                            latest end
--   bucket..'e'      STREAM  the bucket's events (bucket = base up to '}:')
--   bucket..'x'      ZSET    the bucket's tags, scored by their next
--                            deadline (a session's or a connection's)
-- `now` (ms, ARGV[2]) comes from the caller's clock and alone decides
-- liveness; TTLs are set relative to it, so Redis expires everything as a
-- backstop, EXPIRY_GRACE after the deadline so that the sweep can record
-- the expiry first. ARGV[3] is the feed's retention in ms, or '' when no
-- events are recorded.

-- Positions of a record's fields (see record.rs); the refresh fields are
-- there in JWT mode only. F_AT holds authenticated_at less created_at.
local F_ID, F_UID, F_IP, F_KIND, F_CA, F_LS, F_EXP, F_ABS, F_TTL, F_MODE, F_DATA = 2, 3, 6, 7, 10, 11, 12, 13, 14, 15, 16
local F_AT, F_AAL, F_AMR = 17, 18, 19
local F_RH, F_RP, F_RW, F_RG, F_RT = 20, 21, 22, 23, 24
local ID_LEN, TH_LEN = 22, 32
local EXPIRY_GRACE = 10000

local function rkey(base, th) return base .. 'r:' .. th end
local function ikey(base) return base .. 'i' end
local function ckey(base) return base .. 'c' end
local function kkey(base) return base .. 'k' end
local function nkey(base) return base .. 'n' end
local function bucket_of(base) return string.match(base, '^(.*}:)') end
local function tag_of(base) return string.match(base, '}:([^:]*):$') end
local function th_of_member(m) return string.sub(m, ID_LEN + 1) end
local function th_of_key(k) return string.sub(k, -TH_LEN) end
-- A record holds the random part of its id; the shard tag is the keys'.
local function member_of(r, k) return r[F_ID] .. th_of_key(k) end
local function full_id(base, r) return tag_of(base) .. r[F_ID] end

-- Integers as plain decimal text (tostring would switch to exponents).
local function int(n) return string.format('%d', n) end

-- Stretch the TTL of key `k` to at least `ttl` ms. PEXPIRE GT treats "no
-- TTL" as infinite, hence PTTL.
local function stretch(k, ttl)
  local cur = redis.call('PTTL', k)
  if cur == -1 or (cur >= 0 and cur < ttl) then redis.call('PEXPIRE', k, ttl) end
end
local function stretch_index(i, ttl) stretch(i, ttl + EXPIRY_GRACE) end

-- Record an event in the bucket's stream. Ids are the server's time in
-- microseconds (one clock for every bucket of a node, so that a reader can
-- tell which events are final) and a sequence for events of the same
-- microsecond, which XADD numbers. `r` is the session's record; `at` the
-- event's time (ms).
local RETENTION = tonumber(ARGV[3])
local function emit(base, kind, r, reason, at)
  if not RETENTION then return end
  local s = bucket_of(base) .. 'e'
  local t = redis.call('TIME')
  -- One field, the event packed (see feed.rs): entries of one field name
  -- are stored as their values alone.
  local packed = cmsgpack.pack({ kind, full_id(base, r), r[F_UID], at, r[F_KIND],
    r[F_IP] or false, reason or false })
  local ok = redis.pcall('XADD', s, t[1] .. string.format('%06d', tonumber(t[2])) .. '-*', 'e', packed)
  if type(ok) == 'table' and ok.err then
    -- The clock is behind the stream's newest id (it stepped back): go on
    -- from that id.
    local top = redis.call('XREVRANGE', s, '+', '-', 'COUNT', 1)[1]
    local tus, tseq = string.match(top[1], '^(%d+)-(%d+)$')
    redis.call('XADD', s, tus .. '-' .. int(tonumber(tseq) + 1), 'e', packed)
  end
  redis.call('PEXPIRE', s, RETENTION + 3600000)
end

-- Move the tag's entry in its bucket's deadline set to its next deadline
-- (of a session or a connection), or drop it when the tag has neither.
local function reindex(base)
  local x = bucket_of(base) .. 'x'
  local next_at
  for _, k in ipairs({ ikey(base), kkey(base) }) do
    local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
    if first[2] then
      local at = tonumber(first[2])
      if not next_at or at < next_at then next_at = at end
    end
  end
  local tag = tag_of(base)
  if next_at then
    redis.call('ZADD', x, next_at, tag)
    local ttl = redis.call('PTTL', ikey(base))
    if ttl > 0 then stretch(x, ttl) end
  else
    redis.call('ZREM', x, tag)
  end
end

-- Drop the connections of the session whose id ends with `id_random`
-- (with it: no events of their own).
local function drop_connections(base, id_random)
  local k = kkey(base)
  for _, m in ipairs(redis.call('ZRANGE', k, 0, -1)) do
    if string.sub(m, 1, ID_LEN) == id_random then
      redis.call('ZREM', k, m)
      redis.call('HDEL', ckey(base), m)
    end
  end
end

-- Remove a session: its record, its index member, its connections.
local function remove(base, k, r)
  redis.call('DEL', k)
  redis.call('ZREM', ikey(base), member_of(r, k))
  drop_connections(base, r[F_ID])
end

-- Remove a session found dead and record its expiry, dated by the
-- deadline that passed. EXPIRED counts them (for the sweep's report).
local EXPIRED = 0
local function expire(base, k, r)
  EXPIRED = EXPIRED + 1
  remove(base, k, r)
  emit(base, 'expired', r, 'expired', math.min(r[F_EXP], r[F_ABS]))
end

-- Decode a record's bytes: its fields, or nil if they do not decode.
local function decode(raw)
  local ok, r = pcall(cmsgpack.unpack, raw)
  if not ok or type(r) ~= 'table' or type(r[F_EXP]) ~= 'number'
      or type(r[F_ABS]) ~= 'number' or type(r[F_ID]) ~= 'string' then
    return nil
  end
  if r[1] == 1 then
    -- Layout 1 had no authentication context: aal1, no methods, at
    -- creation. Saved again, the record is in layout 2.
    table.insert(r, F_AT, 0)
    table.insert(r, F_AAL, 1)
    table.insert(r, F_AMR, {})
    r[1] = 2
  end
  return r
end

-- The record at key `k` if it is live at `now`: a table of its fields with
-- `raw`, its stored bytes. nil if absent; a dead one is removed on sight
-- with its index member (and its expiry recorded). A record that does not
-- decode comes back as {raw = bytes, bad = true}: callers change nothing
-- and return it, and the client reports it as corrupt.
local function load(base, k, now)
  local raw = redis.call('GET', k)
  if not raw then return nil end
  local r = decode(raw)
  if not r then return { raw = raw, bad = true } end
  if r[F_EXP] <= now or r[F_ABS] <= now then
    expire(base, k, r)
    reindex(base)
    return nil
  end
  r.raw = raw
  return r
end

-- Write record `r` to key `k` with a TTL to its idle deadline (and the
-- grace); returns the bytes written.
local function save(k, r, now)
  r.raw = nil
  r.bad = nil
  local raw = cmsgpack.pack(r)
  redis.call('SET', k, raw, 'PX', r[F_EXP] - now + EXPIRY_GRACE)
  r.raw = raw
  return raw
end

-- Move a live record's idle deadline to `exp` (> now) and save it; the
-- index score and TTL follow.
local function save_with_deadline(base, k, r, exp, now)
  r[F_EXP] = exp
  local raw = save(k, r, now)
  local i = ikey(base)
  redis.call('ZADD', i, exp, member_of(r, k))
  stretch_index(i, exp - now)
  reindex(base)
  return raw
end

-- The index member of the session whose id ends with `id_random`, if any.
local function find(base, id_random)
  for _, m in ipairs(redis.call('ZRANGE', ikey(base), 0, -1)) do
    if string.sub(m, 1, ID_LEN) == id_random then return m end
  end
  return nil
end

-- The live sessions of the tag, as {key, record} pairs, in no particular
-- order. Sessions past their deadline are removed with their expiry
-- recorded, and members whose record is gone are dropped, so the index
-- only holds live sessions once this ran.
local function live(base, now)
  local i = ikey(base)
  local out, changed = {}, false
  for _, m in ipairs(redis.call('ZRANGE', i, 0, -1)) do
    local k = rkey(base, th_of_member(m))
    local raw = redis.call('GET', k)
    local r = raw and decode(raw)
    if not raw then
      redis.call('ZREM', i, m)
      drop_connections(base, string.sub(m, 1, ID_LEN))
      changed = true
    elseif not r then
      -- undecodable: left alone, reported by the reads of its token
    elseif r[F_EXP] <= now or r[F_ABS] <= now then
      expire(base, k, r)
      changed = true
    else
      r.raw = raw
      out[#out + 1] = { key = k, r = r }
    end
  end
  if changed then reindex(base) end
  return out
end

-- A not-before mark's text ('at:end'): its time and its end, or nil.
local function parse_mark(v)
  local at, till = string.match(v or '', '^(%d+):(%d+)$')
  if not at then return nil end
  return tonumber(at), tonumber(till)
end

-- User `uid`'s not-before mark (ms) if one is set and has not ended by `now`.
local function not_before(base, uid, now)
  local at, till = parse_mark(redis.call('HGET', nkey(base), uid))
  if not at or till <= now then return nil end
  return at
end

-- The slid idle deadline after activity at `now`.
local function slid(r, now)
  return math.max(r[F_EXP], math.min(now + r[F_TTL], r[F_ABS]))
end
