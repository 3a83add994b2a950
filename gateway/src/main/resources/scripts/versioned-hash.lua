-- Creates, replaces or deletes one entry of a versioned hash (an app's templates, Keys.templates;
-- its issued API keys, Keys.apiKeys): '@v' the version, moved on by every change so every node
-- polling it re-reads the hash.
-- KEYS[1] the hash. ARGV[1] 'create' | 'replace' | 'delete', ARGV[2] the field, ARGV[3] the value
-- (create, replace).
-- Reply: {1, version} done; {0, version} refused: create of an existing field, replace or delete
-- of a missing one.
local exists = redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1
local mode = ARGV[1]
if (mode == 'create' and exists) or (mode ~= 'create' and not exists) then
  return {0, tonumber(redis.call('HGET', KEYS[1], '@v') or '0')}
end
if mode == 'delete' then
  redis.call('HDEL', KEYS[1], ARGV[2])
else
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
end
return {1, redis.call('HINCRBY', KEYS[1], '@v', 1)}
