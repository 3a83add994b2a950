-- Frees a claim whose request ended without journaling anything (429, 503, ...), so a retry may run.
-- Deletes the key only while it is still this request's pending claim: a key marked done (the
-- journal append went through even if its reply was lost) is never freed.
-- KEYS[1] the key's hash; ARGV[1] the batch id of the claiming request. Reply: 1 freed, 0 not.
if redis.call('HGET', KEYS[1], 'state') == 'pending' and redis.call('HGET', KEYS[1], 'batch') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
