-- Helpers shared by every sessiond script (prepended to each one).
--
-- Key schema (version 2), every key in the hash slot of one shard tag.
-- `base` is '<prefix>v2:{<shard tag>}:' and arrives in ARGV[1]:
--   base..'r:'..th   STRING  a session record (MessagePack, see record.rs)
--                            of the token (or refresh family) whose hash
--                            starts with th (32 base64url characters)
--   base..'i'        ZSET    one member per session: the random part of
--                            its id (22 characters) then th; scored by the
--                            session's idle deadline
-- `now` (ms) comes from the caller's clock and alone decides liveness; TTLs
-- are set relative to it, so Redis expires everything as a backstop.

-- Positions of a record's fields (see record.rs); the refresh fields are
-- there in JWT mode only.
local F_ID, F_UID, F_CA, F_LS, F_EXP, F_ABS, F_TTL, F_MODE, F_DATA = 2, 3, 10, 11, 12, 13, 14, 15, 16
local F_RH, F_RP, F_RW, F_RG, F_RT = 17, 18, 19, 20, 21
local ID_LEN, TH_LEN = 22, 32

local function rkey(base, th) return base .. 'r:' .. th end
local function ikey(base) return base .. 'i' end
local function th_of_member(m) return string.sub(m, ID_LEN + 1) end
local function th_of_key(k) return string.sub(k, -TH_LEN) end
-- A record holds the random part of its id; the shard tag is the keys'.
local function member_of(r, k) return r[F_ID] .. th_of_key(k) end
local function full_id(base, r) return string.match(base, '{(.-)}') .. r[F_ID] end

-- Integers as plain decimal text (tostring would switch to exponents).
local function int(n) return string.format('%d', n) end

-- Stretch the index TTL to at least `ttl` ms (it lives as long as its
-- longest-lived member). PEXPIRE GT treats "no TTL" as infinite, hence PTTL.
local function stretch_index(i, ttl)
  local cur = redis.call('PTTL', i)
  if cur == -1 or (cur >= 0 and cur < ttl) then redis.call('PEXPIRE', i, ttl) end
end

-- The record at key `k` if it is live at `now`: a table of its fields with
-- `raw`, its stored bytes. nil if absent; a dead one is removed on sight
-- with its index member. A record that does not decode comes back as
-- {raw = bytes, bad = true}: callers change nothing and return it, and the
-- client reports it as corrupt.
local function load(base, k, now)
  local raw = redis.call('GET', k)
  if not raw then return nil end
  local ok, r = pcall(cmsgpack.unpack, raw)
  if not ok or type(r) ~= 'table' or type(r[F_EXP]) ~= 'number'
      or type(r[F_ABS]) ~= 'number' or type(r[F_ID]) ~= 'string' then
    return { raw = raw, bad = true }
  end
  if r[F_EXP] <= now or r[F_ABS] <= now then
    redis.call('DEL', k)
    redis.call('ZREM', ikey(base), member_of(r, k))
    return nil
  end
  r.raw = raw
  return r
end

-- Write record `r` to key `k` with a TTL to its idle deadline; returns the
-- bytes written.
local function save(k, r, now)
  r.raw = nil
  r.bad = nil
  local raw = cmsgpack.pack(r)
  redis.call('SET', k, raw, 'PX', r[F_EXP] - now)
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
-- order. Members past their deadline and members whose record is gone are
-- removed on the way, so the index only holds live sessions once this ran.
local function live(base, now)
  local i = ikey(base)
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', i, '-inf', now)) do
    redis.call('DEL', rkey(base, th_of_member(m)))
  end
  redis.call('ZREMRANGEBYSCORE', i, '-inf', now)
  local out = {}
  for _, m in ipairs(redis.call('ZRANGE', i, 0, -1)) do
    local k = rkey(base, th_of_member(m))
    local r = load(base, k, now)
    if not r then
      redis.call('ZREM', i, m)
    elseif not r.bad then
      out[#out + 1] = { key = k, r = r }
    end
  end
  return out
end

-- Remove a session: its record and its index member.
local function remove(base, k, r)
  redis.call('DEL', k)
  redis.call('ZREM', ikey(base), member_of(r, k))
end

-- The slid idle deadline after activity at `now`.
local function slid(r, now)
  return math.max(r[F_EXP], math.min(now + r[F_TTL], r[F_ABS]))
end
