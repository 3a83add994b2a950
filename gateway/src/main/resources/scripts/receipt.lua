-- A receipt for an accepted message: from the provider (SMS delivery report: delivered or
-- failed) or from the device (delivered, opened, clicked, dismissed). State only moves forward:
-- accepted < delivered < opened < clicked; a later stage counts the stages it skipped (a click
-- without an open counts as open and click); a repeated or older receipt changes nothing.
-- KEYS[1] message hash, KEYS[2] history list, KEYS[3] batch hash, KEYS[4] the app's event log,
-- KEYS[5] the user's engagement hash, KEYS[6..] funnel counter hashes.
-- ARGV[1] JSON: {event, reason, at, retention, history (JSON line), ttls, event_json, minid, hour}.
-- Reply: 1 applied, 0 no-op (repeat, older stage, or not accepted yet / failed / dropped),
-- -1 not accepted yet (the caller may retry).
local a = cjson.decode(ARGV[1])
local rank = {accepted = 1, delivered = 2, opened = 3, clicked = 4}
local order = {'accepted', 'delivered', 'opened', 'clicked'}
local cur = redis.call('HGET', KEYS[1], 'state')
local curRank = cur and rank[cur]
if not curRank then
  if not cur or cur == 'deferred' then return -1 end
  return 0
end
if a.event == 'dismissed' then
  if redis.call('HSETNX', KEYS[1], 'dismissed', a.at) == 0 then return 0 end
  redis.call('RPUSH', KEYS[2], a.history)
  count({'dismissed'}, 6, a.ttls)
  log(KEYS[4], a.minid, a.event_json)
  return 1
end
local label
local stages = {}
if a.event == 'failed' then
  if curRank ~= 1 then return 0 end
  label = 'failed:' .. a.reason
  stages = {'failed', label}
else
  local newRank = rank[a.event]
  if not newRank or newRank <= curRank then return 0 end
  label = a.event
  for r = curRank + 1, newRank do
    stages[#stages + 1] = order[r]
  end
end
redis.call('HSET', KEYS[1], 'state', label, 'at', a.at)
redis.call('HINCRBY', KEYS[3], 'n:' .. cur, -1)
redis.call('HINCRBY', KEYS[3], 'n:' .. label, 1)
redis.call('RPUSH', KEYS[2], a.history)
count(stages, 6, a.ttls)
log(KEYS[4], a.minid, a.event_json)
for _, s in ipairs(stages) do
  if s == 'opened' then
    redis.call('HSET', KEYS[5], 'lastOpen', a.at)
    redis.call('HINCRBY', KEYS[5], 'h' .. a.hour, 1)
    redis.call('HINCRBY', KEYS[5], 'opens', 1)
  elseif s == 'clicked' then
    redis.call('HSET', KEYS[5], 'lastClick', a.at)
  end
end
redis.call('PEXPIRE', KEYS[1], a.retention)
redis.call('PEXPIRE', KEYS[2], a.retention)
return 1
