-- Reads (and assigns) the user index of many users in one call. KEYS: the users' hashes (one slot
-- group: callers group users by Redis.slotOf). ARGV[1] the index field ('@idx'); ARGV[2..] when
-- given, one candidate index per key, set where the user has none (HSETNX: a racing caller's index
-- wins). Reply: each user's index, in KEYS order (false where the user has none and none was given).
local out = {}
for i, key in ipairs(KEYS) do
  if ARGV[i + 1] and redis.call('HSETNX', key, ARGV[1], ARGV[i + 1]) == 1 then
    out[i] = ARGV[i + 1]
  else
    out[i] = redis.call('HGET', key, ARGV[1])
  end
end
return out
