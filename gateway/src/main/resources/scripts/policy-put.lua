-- Stores a new version of an app's delivery policy, if the caller saw the current one.
-- KEYS[1] the app's policy hash (Keys.policy: v = version, json). ARGV[1] the version the caller
-- read ('' = whatever is there: no If-Match), ARGV[2] the new policy JSON (without its version).
-- Reply: {1, new version} when stored, {0, current version} when ARGV[1] is stale.
local cur = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= cur then
  return {0, cur}
end
redis.call('HSET', KEYS[1], 'v', cur + 1, 'json', ARGV[2])
return {1, cur + 1}
