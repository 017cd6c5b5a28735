-- Record activity on a session when it is due: last seen = now, the idle
-- deadline slides (never past the absolute one).
-- KEYS: record key. ARGV: base, now, retention, touch interval ms.
-- Returns {'record', bytes} or {'none'}.
local base, now, interval = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4])

local r = load(base, KEYS[1], now)
if not r then return { 'none' } end
if r.bad then return { 'record', r.raw } end
-- The engine's effective_touch_interval_ms: min(interval, idle_ttl / 4).
if now - r[F_LS] >= math.min(interval, math.floor(r[F_TTL] / 4)) then
  r[F_LS] = now
  return { 'record', save_with_deadline(base, KEYS[1], r, slid(r, now), now) }
end
return { 'record', r.raw }
