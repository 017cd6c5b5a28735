-- A user's not-before mark.
-- KEYS: marks. ARGV: base, now, retention, user id.
-- Returns the mark (ms), or nil when none is set or it has ended.
return not_before(ARGV[1], ARGV[4], tonumber(ARGV[2])) or false
