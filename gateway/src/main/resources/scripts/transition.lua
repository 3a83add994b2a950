-- Moves one message to a new state, once: a message already terminal stays as it is.
-- KEYS[1] message hash, KEYS[2] history list, KEYS[3] batch hash (all tagged by batch id).
-- ARGV[1] new state label ('deferred', 'accepted', 'failed:<reason>', 'dropped:<reason>'); terminal
-- states (accepted, delivered, failed, dropped) never change here (receipt.lua moves accepted on).
-- ARGV[2] time (epoch ms), ARGV[3] retention ms, ARGV[4..] history entries (JSON strings).
-- Batch counts live in the batch hash as n:<label>; 'queued' starts at the accepted count.
-- Reply: 1 when the state changed, 0 when the message was already terminal.
local cur = redis.call('HGET', KEYS[1], 'state')
if cur then
  local kind = string.match(cur, '^[a-z_]+')
  if kind == 'accepted' or kind == 'delivered' or kind == 'failed' or kind == 'dropped' then
    return 0
  end
else
  cur = 'queued'
end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'at', ARGV[2])
redis.call('HINCRBY', KEYS[3], 'n:' .. cur, -1)
redis.call('HINCRBY', KEYS[3], 'n:' .. ARGV[1], 1)
for i = 4, #ARGV do
  redis.call('RPUSH', KEYS[2], ARGV[i])
end
-- A delivery receipt that overtook the acceptance (receipt.lua parked it): apply it now.
if ARGV[1] == 'accepted' then
  local r = redis.call('HMGET', KEYS[1], 'receipt', 'receipt_at', 'receipt_h')
  if r[1] then
    redis.call('HSET', KEYS[1], 'state', r[1], 'at', r[2])
    redis.call('HINCRBY', KEYS[3], 'n:accepted', -1)
    redis.call('HINCRBY', KEYS[3], 'n:' .. r[1], 1)
    redis.call('RPUSH', KEYS[2], r[3])
    redis.call('HDEL', KEYS[1], 'receipt', 'receipt_at', 'receipt_h')
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
