-- Re-admits due deferred messages: moves up to ARGV[1] of them from the deferred set into one
-- new journal entry, atomically, so a crash after this call loses nothing (replay finds them).
-- KEYS[1] deferred zset (score = due epoch ms), KEYS[2] deferred data hash, KEYS[3] journal stream.
-- Reply: {} when nothing is due, else {entryId, id1, item1, id2, item2, ...}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
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
table.insert(out, 1, entry)
return out
