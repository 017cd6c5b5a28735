-- Helpers shared by every sessiond script (prepended to each one).
--
-- Key schema, all in the hash slot of one user's shard tag. `base` is
-- '<prefix>{<shard tag>}:' and arrives in ARGV[1]:
--   base..'s:'..id    HASH   uid, role, dev, ca, ls, exp, abs, ttl, th, and
--                            one '.<key>' field per top-level data key; in
--                            JWT mode also md='jwt' and the refresh state:
--                            rh current and rp previous refresh token hash,
--                            rw successor wrapped under rp, rg generation,
--                            rt when rh was issued
--   base..'t:'..th    STRING the session id, for the token whose hash is th
--                            (JWT mode: th is the refresh family's digest)
--   base..'u:'..uid   ZSET   the user's session ids, scored by `exp`
-- `now` (ms) comes from the caller's clock and alone decides liveness; key
-- TTLs are set relative to it, so Redis expires everything as a backstop.

local function skey(base, id) return base .. 's:' .. id end
local function tkey(base, th) return base .. 't:' .. th end
local function ukey(base, uid) return base .. 'u:' .. uid end

-- Integers as plain decimal text (tostring would switch to exponents).
local function int(n) return string.format('%d', n) end

-- An HGETALL reply as a table.
-- A session's HGETALL fields as one string, joined by NUL bytes: one reply
-- element instead of two per field, which the client decodes several times
-- faster. Stored text has no NUL except, possibly, in an app's data key;
-- such a session is returned as the array itself.
local function packed(flat)
  for i = 1, #flat do
    if string.find(flat[i], '\0', 1, true) then return flat end
  end
  return table.concat(flat, '\0')
end

local function fields_of(flat)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end

-- Set one field's value in an HGETALL reply (to return what was written).
local function patch(flat, name, value)
  for i = 1, #flat, 2 do
    if flat[i] == name then
      flat[i + 1] = value
      return
    end
  end
  flat[#flat + 1] = name
  flat[#flat + 1] = value
end

-- Run `cmd key list[first..]` in chunks: unpack is bounded by Lua's stack.
local function call_chunked(cmd, key, list, first)
  local step = 512 -- even, so field/value pairs are never split
  for i = first, #list, step do
    redis.call(cmd, key, unpack(list, i, math.min(i + step - 1, #list)))
  end
end

-- Delete a session: its hash, its token key, its entry in index `u`.
-- Redis deletes the index by itself when its last member goes.
local function remove(base, id, th, u)
  redis.call('DEL', skey(base, id))
  if th then redis.call('DEL', tkey(base, th)) end
  if u then redis.call('ZREM', u, id) end
end

-- Stretch the index TTL to at least `ttl` ms (it lives as long as its
-- longest-lived member). PEXPIRE GT treats "no TTL" as infinite, hence PTTL.
local function stretch_index(u, ttl)
  local cur = redis.call('PTTL', u)
  if cur == -1 or (cur >= 0 and cur < ttl) then redis.call('PEXPIRE', u, ttl) end
end

-- Session `id` if it is live at `now`, as {flat, h, exp, abs}; nil if absent.
-- A record past either deadline is removed on sight. A record whose deadlines
-- do not parse comes back with exp = nil: callers change nothing and return
-- it, and the client reports it as corrupt.
local function load(base, id, now)
  local flat = redis.call('HGETALL', skey(base, id))
  if #flat == 0 then return nil end
  local h = fields_of(flat)
  local exp, abs = tonumber(h.exp), tonumber(h.abs)
  if exp and abs and (exp <= now or abs <= now) then
    remove(base, id, h.th, h.uid and ukey(base, h.uid))
    return nil
  end
  if not (exp and abs) then exp, abs = nil, nil end
  return { flat = flat, h = h, exp = exp, abs = abs }
end

-- Move a live session's idle deadline to `exp` (> now): hash, token key and
-- index score and TTL follow.
local function set_deadline(base, id, rec, exp, now)
  local ttl = exp - now
  redis.call('HSET', skey(base, id), 'exp', int(exp))
  patch(rec.flat, 'exp', int(exp))
  rec.exp = exp
  redis.call('PEXPIRE', skey(base, id), ttl)
  if rec.h.th then redis.call('PEXPIRE', tkey(base, rec.h.th), ttl) end
  if rec.h.uid then
    local u = ukey(base, rec.h.uid)
    redis.call('ZADD', u, exp, id) -- the session is live: (re)index it
    stretch_index(u, ttl)
  end
end

-- Live members of index `u` as {id, ca, th}, in no particular order.
-- Members whose hash is gone or dead are removed on sight, so the index only
-- ever holds live sessions once this has run.
local function prune(base, u, now)
  local live = {}
  for _, id in ipairs(redis.call('ZRANGE', u, 0, -1)) do
    local v = redis.call('HMGET', skey(base, id), 'exp', 'abs', 'ca', 'th')
    local exp, abs = tonumber(v[1]), tonumber(v[2])
    local th = v[4] or nil
    if not (v[1] or v[2] or v[3] or v[4]) then
      redis.call('ZREM', u, id)
    elseif exp and abs and (exp <= now or abs <= now) then
      remove(base, id, th, u)
    else
      live[#live + 1] = { id = id, ca = tonumber(v[3]) or 0, th = th }
    end
  end
  return live
end

