-- Re-admits due deferred messages: moves up to ARGV[1] of them from the deferred set into one
-- new journal entry, atomically, so a crash after this call loses nothing (replay finds them).
-- KEYS[1] deferred zset (score = due epoch ms), KEYS[2] deferred data hash, KEYS[3] journal stream,
-- KEYS[4] this call's request key (Keys.promotion): the id of the entry written is kept there for
--   ARGV[2] ms, and a call with the same request key returns that entry again instead of
--   promoting more, so a caller that lost the reply retries without leaving the entry behind.
-- ARGV[3] now (epoch ms, the gateway's clock: what is due).
-- Reply: {} when nothing is due, else {entryId, id1, item1, id2, item2, ...}.
local prev = redis.call('GET', KEYS[4])
if prev then
  local entries = redis.call('XRANGE', KEYS[3], prev, prev)
  if #entries == 0 then return {} end
  local out = {prev}
  local fields = entries[1][2]
  for i = 1, #fields, 2 do
    if fields[i] ~= 'k' then
      out[#out + 1] = fields[i]
      out[#out + 1] = fields[i + 1]
    end
  end
  return out
end
local now = tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
if #ids == 0 then return {} end
local args = {KEYS[3], '*', 'k', 'r'}
local out = {}
for _, id in ipairs(ids) do
  local v = redis.call('HGET', KEYS[2], id)
  if v then
    args[#args + 1] = id
    args[#args + 1] = v
    out[#out + 1] = id
    out[#out + 1] = v
  end
end
redis.call('ZREM', KEYS[1], unpack(ids))
redis.call('HDEL', KEYS[2], unpack(ids))
if #out == 0 then return {} end
local entry = redis.call('XADD', unpack(args))
redis.call('SET', KEYS[4], entry, 'PX', ARGV[2])
table.insert(out, 1, entry)
return out
