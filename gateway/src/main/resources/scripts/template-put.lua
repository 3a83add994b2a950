-- Creates, replaces or deletes one template of an app (Keys.templates: '@v' the app's template
-- version, 't:<id>' each template's JSON), moving the version on so every node re-reads.
-- KEYS[1] the app's templates hash. ARGV[1] 'create' | 'replace' | 'delete', ARGV[2] the id,
-- ARGV[3] the JSON (create, replace).
-- Reply: {1, version} done; {0, version} refused: create of an existing id, replace or delete of a
-- missing one.
local field = 't:' .. ARGV[2]
local exists = redis.call('HEXISTS', KEYS[1], field) == 1
local mode = ARGV[1]
if (mode == 'create' and exists) or (mode ~= 'create' and not exists) then
  return {0, tonumber(redis.call('HGET', KEYS[1], '@v') or '0')}
end
if mode == 'delete' then
  redis.call('HDEL', KEYS[1], field)
else
  redis.call('HSET', KEYS[1], field, ARGV[3])
end
return {1, redis.call('HINCRBY', KEYS[1], '@v', 1)}
