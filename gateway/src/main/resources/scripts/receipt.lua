-- A receipt for an accepted message: from the provider (SMS delivery report: delivered or
-- failed) or from the device (delivered, opened, clicked, dismissed). State only moves forward:
-- accepted < delivered < opened < clicked; a later stage counts the stages it skipped (a click
-- without an open counts as open and click); a repeated or older receipt changes nothing.
-- An SMS delivery report is per part (a.part of a.parts): the message is delivered when every
-- part is, failed as soon as one part fails (sms-parts.lua). A part receipt that comes before the
-- message is recorded as accepted is parked in the message's part hash, durably, and applied by
-- transition.lua when it records accepted; a part receipt repeated counts once.
-- KEYS[1] message hash, KEYS[2] history list, KEYS[3] batch hash, KEYS[4] the app's event log,
-- KEYS[5] the user's engagement hash, KEYS[6] the message's SMS part receipts (Keys.smsParts),
-- KEYS[7..] funnel counter hashes.
-- ARGV[1] JSON: {event, reason, at, retention, history (JSON line), ttls, event_json, minid, hour};
-- an SMS part receipt adds {part, parts, receipt (JSON kept per part), app, park (true: may be
-- parked), parts_ttl (ms), meta (true: the caller read the message's record), refused (history
-- line for a receipt that may not be parked)}.
-- Reply: 1 applied, 0 no-op (repeat, older stage, or failed / dropped), -1 not accepted yet (a
-- device receipt: the caller may retry; an SMS part that may not be parked: noted in the history),
-- 2 parked, 3 part recorded (other parts missing), -2 no such message of a.app, -3 accepted since
-- the caller read the record (read it again: the counters depend on it).
local a = cjson.decode(ARGV[1])
local rank = {accepted = 1, delivered = 2, opened = 3, clicked = 4}
local order = {'accepted', 'delivered', 'opened', 'clicked'}
local cur = redis.call('HGET', KEYS[1], 'state')
if a.part then
  if not cur or cur == 'queued' or cur == 'deferred' then
    if not a.park then
      if a.refused then
        redis.call('RPUSH', KEYS[2], a.refused)
        redis.call('PEXPIRE', KEYS[2], a.retention)
      end
      return -1
    end
    if redis.call('HGET', KEYS[3], 'app') ~= a.app then return -2 end
    local added = redis.call('HSETNX', KEYS[6], a.part, a.receipt)
    redis.call('HSET', KEYS[6], 'n', a.parts)
    redis.call('HSETNX', KEYS[6], '@parked', a.at)
    redis.call('PEXPIRE', KEYS[6], a.parts_ttl)
    if added == 0 then return 0 end
    return 2
  end
  if cur ~= 'accepted' or redis.call('HGET', KEYS[1], 'ch') ~= 'sms' then return 0 end
  if not a.meta then return -3 end
  local label, part, n, at
  if a.parts > 1 then
    if redis.call('HSETNX', KEYS[6], a.part, a.receipt) == 0 then return 0 end
    redis.call('HSET', KEYS[6], 'n', a.parts)
    redis.call('PEXPIRE', KEYS[6], a.parts_ttl)
    local got
    label, part, n, got, at = parts_verdict(KEYS[6])
    if not label then return 3 end
    redis.call('DEL', KEYS[6])
  else
    label = a.event == 'failed' and ('failed:' .. a.reason) or 'delivered'
    part, n, at = 1, 1, a.at
  end
  sms_settle(KEYS[1], KEYS[2], KEYS[3], KEYS[4], 7, a.ttls, a.minid, label, part, n, at, a.event_json, '')
  redis.call('PEXPIRE', KEYS[1], a.retention)
  redis.call('PEXPIRE', KEYS[2], a.retention)
  return 1
end
local curRank = cur and rank[cur]
if not curRank then
  if not cur or cur == 'deferred' then return -1 end
  return 0
end
if a.event == 'dismissed' then
  if redis.call('HSETNX', KEYS[1], 'dismissed', a.at) == 0 then return 0 end
  redis.call('RPUSH', KEYS[2], a.history)
  count({'dismissed'}, 7, a.ttls)
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
count(stages, 7, a.ttls)
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
