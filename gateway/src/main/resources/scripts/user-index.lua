-- Reads (and assigns) the user index of many users in one call. KEYS: the users' hashes (one slot
-- group: callers group users by Redis.slotOf). ARGV[1] the index field ('@idx'); ARGV[2..] free
-- indexes the caller reserved (from the app's counter), given to users without one, in KEYS
-- order (read and set within this atomic call: a racing caller's index is the one it reads).
-- Reply: each user's index, in KEYS order (false where the user has none and no free index was
-- left), then how many of the free indexes were used (the caller keeps the rest for later calls).
local out = {}
local used = 0
for i, key in ipairs(KEYS) do
  local v = redis.call('HGET', key, ARGV[1])
  if not v and ARGV[used + 2] then
    v = ARGV[used + 2]
    used = used + 1
    redis.call('HSET', key, ARGV[1], v)
  end
  out[i] = v or false
end
out[#KEYS + 1] = used
return out
