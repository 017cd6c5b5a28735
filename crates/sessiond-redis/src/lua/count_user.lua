-- Number of a user's live sessions.
-- KEYS: user index. ARGV: base, now.
return #prune(ARGV[1], KEYS[1], tonumber(ARGV[2]))
