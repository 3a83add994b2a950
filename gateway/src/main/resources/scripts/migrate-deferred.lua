-- Moves deferred messages from the set of Herald before the shards into their shards, atomically
-- per call (standalone Redis only: the keys are in several slots).
-- KEYS[1] the old deferred zset, KEYS[2] its data hash, KEYS[3 .. 2 + n] the shards' zsets,
-- KEYS[3 + n .. 2 + 2n] the shards' data hashes (n = ARGV[1]).
-- ARGV[1] n, ARGV[2..] 'message id US shard' (0-based). Reply: how many moved.
local n = tonumber(ARGV[1])
local moved = 0
for j = 2, #ARGV do
  local id, shard = string.match(ARGV[j], '^([^\31]*)\31(%d+)$')
  shard = tonumber(shard)
  local v = redis.call('HGET', KEYS[2], id)
  local due = redis.call('ZSCORE', KEYS[1], id)
  if v and due then
    redis.call('HSET', KEYS[3 + n + shard], id, v)
    redis.call('ZADD', KEYS[3 + shard], due, id)
    moved = moved + 1
  end
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
return moved
