-- The live session of a token, touched if asked and due.
-- KEYS: token key. ARGV: base, now, token hash, touch interval ms ('' = none).
-- Returns {'session', id, packed fields} or {'none'}.
local base, now, th, interval = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]

local id = redis.call('GET', KEYS[1])
if not id then return { 'none' } end
local rec = load(base, id, now)
if not rec or rec.h.th ~= th then
  redis.call('DEL', KEYS[1]) -- points at nothing live: drop it
  return { 'none' }
end
if interval ~= '' and rec.exp then
  local idle, seen = tonumber(rec.h.ttl), tonumber(rec.h.ls)
  -- The engine's effective_touch_interval_ms: min(interval, idle_ttl / 4).
  if idle and seen and now - seen >= math.min(tonumber(interval), math.floor(idle / 4)) then
    redis.call('HSET', skey(base, id), 'ls', ARGV[2])
    patch(rec.flat, 'ls', ARGV[2])
    local exp = math.max(rec.exp, math.min(now + idle, rec.abs))
    if exp ~= rec.exp then set_deadline(base, id, rec, exp, now) end
  end
end
return { 'session', id, packed(rec.flat) }
