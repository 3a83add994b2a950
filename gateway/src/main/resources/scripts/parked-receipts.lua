-- Looks at one message whose SMS part receipts were parked before its acceptance (for the
-- sweeper in SmsReceipts), and ends the wait of receipts parked for too long.
-- KEYS[1] the message's SMS part receipts (Keys.smsParts), KEYS[2] message hash, KEYS[3] history list.
-- ARGV[1] now (ms), ARGV[2] how long a receipt may stay parked (ms), ARGV[3] retention (ms).
-- Reply {code, parked at, receipts}: 0 nothing parked any more (applied or discarded when the
-- message ended, or its parts now wait after acceptance): forget it; 1 still parked; 2 parked
-- too long: the receipts are dropped and the message's history says so.
local parkedAt = redis.call('HGET', KEYS[1], '@parked')
if not parkedAt then return {0, 0, 0} end
local state = redis.call('HGET', KEYS[2], 'state')
if state and state ~= 'queued' and state ~= 'deferred' then return {0, 0, 0} end
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
if now - tonumber(parkedAt) < ttl then return {1, tonumber(parkedAt), 0} end
local got = 0
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if f ~= 'n' and f ~= '@parked' then got = got + 1 end
end
redis.call('DEL', KEYS[1])
redis.call('RPUSH', KEYS[3], cjson.encode({at = now, state = 'receipt_ignored', channel = 'sms',
  detail = got .. ' SMS part receipt(s) parked since ' .. parkedAt .. ' expired: the message was not recorded as'
    .. ' accepted within ' .. ttl .. ' ms'}))
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[3]))
return {2, tonumber(parkedAt), got}
