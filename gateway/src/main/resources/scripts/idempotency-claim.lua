-- Claims an Idempotency-Key for one request, or tells who holds it. Atomic, so of two concurrent
-- requests with the same key exactly one gets 'claimed'.
-- KEYS[1] the key's hash (Keys.idempotency: herald:idem:{s.<n>}:<app>:<sha256 of the header value>).
-- ARGV[1] SHA-256 (hex) of the request body, ARGV[2] the batch id this request would create,
-- ARGV[3] how long an unfinished claim lives (ms): a node that dies holding it frees it this way.
-- Reply: {'claimed'} when this request now holds the key (state 'pending'); else the holder's
-- {state ('pending' or 'done'), body hash, batch id}.
local cur = redis.call('HMGET', KEYS[1], 'state', 'hash', 'batch')
if cur[1] and cur[3] == ARGV[2] and cur[1] == 'pending' then
  return {'claimed'} -- this very claim, run again (Lettuce re-sends after a reconnect)
end
if cur[1] then
  return cur
end
redis.call('HSET', KEYS[1], 'state', 'pending', 'hash', ARGV[1], 'batch', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {'claimed'}
