-- Journals a batch sent with an Idempotency-Key: the XADD and marking the key 'done' happen in one
-- step, so a journaled batch always has its key and a key marked done always has its entry. A
-- crash before this script leaves a pending claim that lapses (nothing was journaled); a crash
-- after it leaves the entry for replay and the key for the client's retry (same batch id, no
-- second entry).
-- KEYS[1] this node's journal shard of the key's shard, KEYS[2] the key's hash (one slot: {s.<n>}).
-- ARGV[1] batch id, ARGV[2] body hash (hex), ARGV[3] entry JSON, ARGV[4] how long the key is kept (ms).
-- Reply: the stream entry id; nil when another request holds the key now (this request's claim
-- lapsed and was taken over): then nothing is written.
-- Safe to run twice (Lettuce re-sends a command whose reply a dropped connection lost): the
-- second run finds the key done for this batch and returns the same entry id without an XADD.
local cur = redis.call('HMGET', KEYS[2], 'state', 'batch', 'entry')
if cur[2] and cur[2] ~= ARGV[1] then
  return false
end
if cur[1] == 'done' then
  return cur[3]
end
local id = redis.call('XADD', KEYS[1], '*', 'k', 'b', 'e', ARGV[3])
redis.call('HSET', KEYS[2], 'state', 'done', 'hash', ARGV[2], 'batch', ARGV[1], 'entry', id)
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return id
