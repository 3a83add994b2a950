-- Looks at one message whose SMS part receipts were parked before its acceptance (for the
-- sweeper in SmsReceipts), and ends the wait of receipts parked for too long.
-- KEYS[1] the message's SMS part receipts (Keys.smsParts), KEYS[2] the message's chunk.
-- ARGV[1] now (ms), ARGV[2] how long a receipt may stay parked (ms), ARGV[3] retention of a new
-- chunk (ms), ARGV[4] the message's field (index).
-- Reply {code, parked at, receipts}: 0 nothing parked any more (applied or discarded when the
-- message ended, or its parts now wait after acceptance): forget it; 1 still parked; 2 parked
-- too long: the receipts are dropped and the message's history says so.
local parkedAt = redis.call('HGET', KEYS[1], '@parked')
if not parkedAt then return {0, 0, 0} end
local f, rest = rec_parse(redis.call('HGET', KEYS[2], ARGV[4]) or nil)
local state = f and f[1] or nil
if state and state ~= 'queued' and string.sub(state, 1, 8) ~= 'deferred' then return {0, 0, 0} end
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
if now - tonumber(parkedAt) < ttl then return {1, tonumber(parkedAt), 0} end
local got = 0
for _, k in ipairs(redis.call('HKEYS', KEYS[1])) do
  if k ~= 'n' and k ~= '@parked' then got = got + 1 end
end
redis.call('DEL', KEYS[1])
if not f then f = {'queued', '', '', '', '', '', ''} end
redis.call('HSET', KEYS[2], ARGV[4], rec_join(f, rest .. hist(now, 'receipt_ignored', 'sms', '',
  got .. ' SMS part receipt(s) parked since ' .. parkedAt .. ' expired: the message was not recorded as'
    .. ' accepted within ' .. ttl .. ' ms')))
if redis.call('PTTL', KEYS[2]) < 0 then redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3])) end
return {2, tonumber(parkedAt), got}
