-- Fires due trigger instances of one shard: each still pending is marked fired (or suppressed, as
-- the caller's verdict says) and the messages of those fired go into one new entry of this node's
-- journal shard, all in one atomic step, so an instance fires once whichever node runs this, and a
-- crash after the call loses nothing (the journal is replayed by the node or the one taking it over).
-- KEYS[1] the shard's timers (zset), KEYS[2] this node's journal shard of the same slot tag,
-- KEYS[3] this call's request key (Keys.triggerFiring): the entry written is kept there for ARGV[2]
--   ms, and a call with the same request key returns it again instead of firing more;
-- KEYS[4], KEYS[5] the shard's deferred set and data (Keys.deferred, Keys.deferredData): the sends
--   past ARGV[6] (the pipeline capacity the caller reserved) wait there, due now, for the
--   scheduler to promote them as capacity frees; their instances are fired all the same.
-- ARGV[1] now (ms), ARGV[2] request key lifetime (ms), ARGV[3] instance key prefix of the shard
--   (Keys.triggerInstancePrefix: + app:user), ARGV[4] counter key prefix (Keys.triggerStatsPrefix:
--   + app), ARGV[5] the batch id of the messages (a UUID whose last 8 hex digits are 0: message i
--   gets i + 1 there), ARGV[6] how many sends may go into the journal entry, then pairs: timer
--   member, verdict ('send', or the reason it is suppressed).
-- Every key built from a prefix is in the slot of the keys given (the prefix carries the tag).
-- Reply: {} when nothing was sent, else {entryId ('' when every send was deferred), number deferred,
--   due1, id1, item1, ...}: per send its due time, message id and item, or '#<rule>' for one deferred.
local US = '\31'
local prev = redis.call('GET', KEYS[3])
if prev then
  local bar = string.find(prev, '|', 1, true)
  local entry, q = string.sub(prev, 1, bar - 1), string.sub(prev, bar + 1)
  local out = {entry, q}
  if entry == '' then return out end
  local entries = redis.call('XRANGE', KEYS[2], entry, entry)
  if #entries == 0 then return {'', q} end
  local fields = entries[1][2]
  for i = 1, #fields, 2 do
    if fields[i] ~= 'k' then
      out[#out + 1] = '0'
      out[#out + 1] = fields[i]
      out[#out + 1] = fields[i + 1]
    end
  end
  return out
end
local now = tonumber(ARGV[1])
local batch = ARGV[5]
local head = string.sub(batch, 1, 28)
local room = tonumber(ARGV[6])
local queued = 0
local counts = {}
local args = {KEYS[2], '*', 'k', 'r'}
local out = {}
local n = 0
-- The timers go in one step: an instance fires only from 'p', so one another node fired meanwhile
-- (or a cancel removed) is skipped by its state, not by its timer.
local members = {}
for i = 7, #ARGV, 2 do members[#members + 1] = ARGV[i] end
for j = 1, #members, 1000 do
  redis.call('ZREM', KEYS[1], unpack(members, j, math.min(j + 999, #members)))
end
local dq, dd = {}, {}
for i = 7, #ARGV, 2 do
  local member, verdict = ARGV[i], ARGV[i + 1]
  local a = string.find(member, US, 1, true)
  local b = string.find(member, US, a + 1, true)
  local c = string.find(member, US, b + 1, true)
  local app = string.sub(member, 1, a - 1)
  local user = string.sub(member, a + 1, b - 1)
  local rule = string.sub(member, b + 1, c - 1)
  local corr = string.sub(member, c + 1)
  local key = ARGV[3] .. app .. ':' .. user
  local f = 'i|' .. rule .. '|' .. corr
  local v = redis.call('HGET', key, f)
  if v and string.sub(v, 1, 1) == 'p' then
    local s = {}
    for part in string.gmatch(v .. US, '([^' .. US .. ']*)' .. US) do s[#s + 1] = part end
    local item = s[9]
    s[9] = nil
    local due = math.max(tonumber(s[2]), tonumber(s[3]))
    s[7] = now
    local ck = ARGV[4] .. app
    counts[ck] = counts[ck] or {}
    local what
    if verdict == 'send' and item and item ~= '' then
      local id = head .. string.format('%08x', n + 1)
      local json = '{"app":"' .. app .. '","b":"' .. batch .. '","i":' .. n .. ',"at":' .. now
        .. ',"ph":"n","m":' .. item .. '}'
      n = n + 1
      out[#out + 1] = due
      out[#out + 1] = id
      if n <= room then
        args[#args + 1] = id
        args[#args + 1] = json
        out[#out + 1] = json
      else
        dq[#dq + 1] = now
        dq[#dq + 1] = id
        dd[#dd + 1] = id
        dd[#dd + 1] = json
        queued = queued + 1
        out[#out + 1] = '#' .. rule
      end
      s[1] = 'f'
      s[6] = id
      what = rule .. '|fired'
    else
      s[1] = 's'
      s[8] = verdict
      what = rule .. '|suppressed:' .. verdict
    end
    counts[ck][what] = (counts[ck][what] or 0) + 1
    redis.call('HSET', key, f, table.concat(s, US))
  end
end
for j = 1, #dq, 1000 do
  redis.call('ZADD', KEYS[4], unpack(dq, j, math.min(j + 999, #dq)))
  redis.call('HSET', KEYS[5], unpack(dd, j, math.min(j + 999, #dd)))
end
for ck, fields in pairs(counts) do
  for f, k in pairs(fields) do
    redis.call('HINCRBY', ck, f, k)
  end
end
if n == 0 then return {} end
local entry = ''
if n > queued then
  entry = redis.call('XADD', unpack(args))
end
redis.call('SET', KEYS[3], entry .. '|' .. queued, 'PX', ARGV[2])
table.insert(out, 1, tostring(queued))
table.insert(out, 1, entry)
return out
