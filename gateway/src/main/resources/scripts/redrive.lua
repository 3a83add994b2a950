-- Re-drives dead letters of one app: each letter leaves the store, its message goes back from
-- 'failed:<reason>' to 'queued' (batch counters and history follow), and all of them go into one new
-- journal entry (k=r, the layout promote.lua writes), in one step: a crash leaves each message
-- either still a dead letter or queued in the journal, never neither.
-- KEYS[1] dead-letter zset, KEYS[2] dead-letter data hash, KEYS[3] this node's journal stream, then per
-- id in ARGV[3..]: message hash, history list, batch hash (KEYS[4 + 3(j-1) .. 6 + 3(j-1)] for the j-th id).
-- ARGV[1] now (ms), ARGV[2] the history line to add, ARGV[3..] message ids.
-- A letter that is gone (re-driven meanwhile) is skipped; one whose message is no longer failed or
-- whose batch has expired is removed without a redrive.
-- Reply: {} when nothing was re-driven, else {entryId, id1, item1, id2, item2, ...}.
local args = {KEYS[3], '*', 'k', 'r'}
local out = {}
for j = 3, #ARGV do
  local id = ARGV[j]
  local item = redis.call('HGET', KEYS[2], 'i:' .. id)
  if item then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id, 'i:' .. id)
    local k = 3 + (j - 3) * 3
    local m, h, b = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
    local cur = redis.call('HGET', m, 'state')
    if cur and string.sub(cur, 1, 7) == 'failed:' and redis.call('EXISTS', b) == 1 then
      redis.call('HSET', m, 'state', 'queued', 'at', ARGV[1])
      redis.call('HINCRBY', b, 'n:' .. cur, -1)
      redis.call('HINCRBY', b, 'n:queued', 1)
      redis.call('RPUSH', h, ARGV[2])
      args[#args + 1] = id
      args[#args + 1] = item
      out[#out + 1] = id
      out[#out + 1] = item
    end
  end
end
if #out == 0 then return {} end
local entry = redis.call('XADD', unpack(args))
table.insert(out, 1, entry)
return out
