-- Re-drives dead letters of one app: each letter leaves the store, its message goes back from
-- 'failed:<reason>' to 'queued' (batch counts and history follow), and all of them go into one new
-- journal entry (k=r, the layout promote.lua writes), in one step: a crash leaves each message
-- either still a dead letter or queued in the journal, never neither.
-- KEYS[1] dead-letter zset, KEYS[2] dead-letter data hash, KEYS[3] this node's journal stream, then per
-- id in ARGV[4..]: its message chunk and its batch hash (KEYS[4 + 2(j-1)], KEYS[5 + 2(j-1)]).
-- ARGV[1] now (ms), ARGV[2] the history detail, ARGV[3] unused, ARGV[4..] 'id US field' per message.
-- A letter that is gone (re-driven meanwhile) is skipped; one whose message is no longer failed or
-- whose batch has expired is removed without a redrive.
-- Cross-slot (the journal's tag, and each message's batch tag): runs on a single Redis only.
-- Reply: {} when nothing was re-driven, else {entryId, id1, item1, id2, item2, ...}.
local args = {KEYS[3], '*', 'k', 'r'}
local out = {}
local now = tonumber(ARGV[1])
for j = 4, #ARGV do
  local id, fld = string.match(ARGV[j], '^([^\31]*)\31(.*)$')
  local item = redis.call('HGET', KEYS[2], 'i:' .. id)
  if item then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id, 'i:' .. id)
    local k = 4 + (j - 4) * 2
    local c, b = KEYS[k], KEYS[k + 1]
    local f, rest = rec_parse(redis.call('HGET', c, fld) or nil)
    local cur = f and f[1] or nil
    if cur and string.sub(cur, 1, 7) == 'failed:' and redis.call('EXISTS', b) == 1 then
      f[1], f[2] = 'queued', b36(now)
      redis.call('HSET', c, fld, rec_join(f, rest .. hist(now, 'redriven', '', '', ARGV[2])))
      redis.call('HINCRBY', b, 'n:' .. cur, -1)
      redis.call('HINCRBY', b, 'n:queued', 1)
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
