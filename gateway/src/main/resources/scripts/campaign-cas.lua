-- Writes a campaign only if it is at the version the caller read (compare-and-set), so two
-- operators (or two nodes) moving one campaign at once cannot lose a move.
-- KEYS[1] the campaign (Keys.campaign: 'json', 'v'). ARGV[1] the version read ('0': must not
-- exist), ARGV[2] the new JSON ('': delete).
-- Reply: the new version (0 after a delete); or -(the current version) when it moved meanwhile.
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then
  return -v
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('HSET', KEYS[1], 'json', ARGV[2], 'v', v + 1)
return v + 1
