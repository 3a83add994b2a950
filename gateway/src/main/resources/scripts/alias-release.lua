-- Releases an alias only while it still names the user. KEYS[1] the alias key; ARGV[1] the user.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
