-- Files dead letters of one app into one shard (one slot: the shard's tag), each a message whose
-- change to failed applied in record.lua; filing the same letter again (a retried flush) changes
-- nothing.
-- KEYS[1] the app's dead-letter zset of the shard, KEYS[2] its data hash.
-- ARGV[1] now (ms), ARGV[2] retention (ms), ARGV[3] the most letters kept in this shard, ARGV[4]
-- the shard, ARGV[5] the shard count, ARGV[6..] letters: id US letter JSON US item JSON.
-- Scores are about ms * 1000, unique and rising ('#last') and equal to the shard modulo the shard
-- count, so scores are unique over all shards and a page merged from them has a total order.
-- Bounded: nothing older than the retention, at most max letters (the oldest go first).
local z, h = KEYS[1], KEYS[2]
local now, retention, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local shard, shards = tonumber(ARGV[4]), tonumber(ARGV[5])
for j = 6, #ARGV do
  local id, letter, item = string.match(ARGV[j], '^([^\31]*)\31([^\31]*)\31(.*)$')
  if redis.call('ZSCORE', z, id) == false then
    local base = now * 1000
    local score = base - math.fmod(base, shards) + shard
    local last = tonumber(redis.call('HGET', h, '#last') or '-1')
    if score <= last then score = last + shards end
    local s = string.format('%.0f', score)
    redis.call('ZADD', z, s, id)
    redis.call('HSET', h, '#last', s, id, letter, 'i:' .. id, item)
  end
end
local old = redis.call('ZRANGEBYSCORE', z, '-inf', string.format('(%.0f', (now - retention) * 1000), 'LIMIT', 0, 100)
local over = redis.call('ZCARD', z) - #old - max
if over > 0 then
  local extra = redis.call('ZRANGE', z, #old, #old + math.min(over, 100) - 1)
  for _, id in ipairs(extra) do old[#old + 1] = id end
end
for _, id in ipairs(old) do
  redis.call('ZREM', z, id)
  redis.call('HDEL', h, id, 'i:' .. id)
end
redis.call('PEXPIRE', z, retention)
redis.call('PEXPIRE', h, retention)
return 1
