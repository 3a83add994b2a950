-- Marks a device invalidated, only if it still has the token that was rejected (a device that
-- re-registered with a new token in the meantime stays active).
-- KEYS[1] the user's device hash; ARGV[1] device id, ARGV[2] token, ARGV[3] reason, ARGV[4] time (epoch ms).
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local d = cjson.decode(v)
if d.token ~= ARGV[2] or d.state == 'invalidated' then return 0 end
d.state = 'invalidated'
d.reason = ARGV[3]
d.invalidatedAt = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(d))
return 1
