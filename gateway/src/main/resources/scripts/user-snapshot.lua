-- A versioned snapshot of a user's hash (profile and devices), for flags derived from it.
-- KEYS[1] the user's hash. Reply: {} when the user does not exist, else {version, HGETALL}; the
-- version ('@ver') grows by one per snapshot, so the newest snapshot wins wherever it is applied.
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local v = redis.call('HINCRBY', KEYS[1], '@ver', 1)
return {v, redis.call('HGETALL', KEYS[1])}
