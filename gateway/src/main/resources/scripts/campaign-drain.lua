-- Moves the oldest chunk of one shard of a campaign's backlog (Keys.campaignBacklog: entries
-- journaled while the pipeline had no room) into this node's journal shard of the same slot, in
-- one step: the entry is in the backlog or in the journal, never in both or neither, so a crash
-- at any moment neither loses nor repeats it (the journal is replayed as any batch's).
-- KEYS[1] the backlog shard, KEYS[2] this node's journal shard, KEYS[3] this call's request key
--   (Keys.promotion): the entry written is kept there for ARGV[1] ms, and a call with the same
--   request key returns it again instead of moving another, so a caller that lost the reply
--   retries without leaving an entry behind.
-- Reply: {} when the backlog shard is empty, else {journal entry id, the entry's batch JSON}.
local function batchOf(fields)
  for i = 1, #fields, 2 do
    if fields[i] == 'e' then return fields[i + 1] end
  end
  return ''
end
local prev = redis.call('GET', KEYS[3])
if prev then
  local e = redis.call('XRANGE', KEYS[2], prev, prev)
  if #e == 0 then return {} end
  return {prev, batchOf(e[1][2])}
end
local head = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if #head == 0 then return {} end
local fields = head[1][2]
local id = redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('XDEL', KEYS[1], head[1][1])
if redis.call('XLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[3], id, 'PX', ARGV[1])
return {id, batchOf(fields)}
