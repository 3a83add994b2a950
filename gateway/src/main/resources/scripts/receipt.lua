-- A provider's later report on an accepted message (SMS delivery receipt): accepted -> delivered,
-- or accepted -> failed:<reason>. Forward only: any other state is left alone, except that a
-- receipt arriving before the acceptance is recorded is parked on the message and applied by
-- transition.lua when 'accepted' is written.
-- KEYS[1] message hash, KEYS[2] history list, KEYS[3] batch hash.
-- ARGV[1] new state label, ARGV[2] time (epoch ms), ARGV[3] retention ms, ARGV[4] history entry.
-- Reply: 1 applied, 2 parked, 0 ignored (already past accepted).
local cur = redis.call('HGET', KEYS[1], 'state')
if cur == 'accepted' then
  redis.call('HSET', KEYS[1], 'state', ARGV[1], 'at', ARGV[2])
  redis.call('HINCRBY', KEYS[3], 'n:accepted', -1)
  redis.call('HINCRBY', KEYS[3], 'n:' .. ARGV[1], 1)
  redis.call('RPUSH', KEYS[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return 1
end
if not cur or cur == 'deferred' then
  redis.call('HSET', KEYS[1], 'receipt', ARGV[1], 'receipt_at', ARGV[2], 'receipt_h', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 2
end
return 0
