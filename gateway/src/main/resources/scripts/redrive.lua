-- Re-drives dead letters of one app in one shard (one slot: the shard's tag): each letter leaves
-- the store and all of them go into one new entry of this node's journal shard (k=d: the layout
-- promote.lua writes, marked as a redrive), in one step: a crash leaves each letter either still
-- a dead letter or in the journal, never neither. Moving each message back from 'failed:<reason>'
-- to 'queued' is requeue.lua's, in the batch's slot, before the entry's messages are processed
-- (after this call, and again when a replay meets a k=d entry).
-- KEYS[1] the shard's dead-letter zset, KEYS[2] its data hash, KEYS[3] this node's journal shard.
-- ARGV[1..] message ids. A letter that is gone (re-driven meanwhile) is skipped.
-- Reply: {} when nothing was re-driven, else {entryId, id1, item1, id2, item2, ...}.
local args = {KEYS[3], '*', 'k', 'd'}
local out = {}
for j = 1, #ARGV do
  local id = ARGV[j]
  local item = redis.call('HGET', KEYS[2], 'i:' .. id)
  if item then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id, 'i:' .. id)
    args[#args + 1] = id
    args[#args + 1] = item
    out[#out + 1] = id
    out[#out + 1] = item
  end
end
if #out == 0 then return {} end
local entry = redis.call('XADD', unpack(args))
table.insert(out, 1, entry)
return out
