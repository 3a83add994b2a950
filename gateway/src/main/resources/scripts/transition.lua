-- Moves one message to a new state, once: a message already terminal stays as it is.
-- KEYS[1] message hash, KEYS[2] history list, KEYS[3] batch hash, KEYS[4] the app's event log,
-- KEYS[5] the message's SMS part receipts (Keys.smsParts), KEYS[6..] funnel counter hashes (batch,
-- app, campaign, variant, channel, time buckets); with a dead letter (a.dead), KEYS[6] the app's
-- dead-letter zset, KEYS[7] its data hash, counters from KEYS[8].
-- ARGV[1] JSON: {label: 'deferred'|'accepted'|'failed:<r>'|'dropped:<r>', at, retention (ms),
--   history: [JSON lines], meta: {field: value} written on the message (user, channel, labels),
--   stages: [funnel stages to count], ttls: [per counter key], event: JSON for the event log, minid,
--   dead: {id, letter (JSON), item (JSON to redrive), max} or absent}.
-- A dead letter is written only when the transition applies, so a message dies once per pass and is
-- never listed without being failed. Its score is ms * 1000, made unique and rising ('#last').
-- Batch state counts live in the batch hash as n:<label>; 'queued' starts at the accepted count.
-- Terminal states (accepted, delivered, opened, clicked, failed, dropped) never change here
-- (receipt.lua moves an accepted message on), with one exception: SMS part receipts that came
-- before 'accepted' (parked by receipt.lua) are applied right after it, in this call, when the
-- message was accepted by SMS; any other end discards them with a history line saying why.
-- Reply: 1 applied, 0 already terminal, 2 already in this state (a retried 'deferred': the
-- counters net to zero and count nothing), 3 applied and parked SMS receipts then settled the
-- message too (the caller reads the state it settled in).
local a = cjson.decode(ARGV[1])
local cur = redis.call('HGET', KEYS[1], 'state')
if cur then
  local kind = string.match(cur, '^[a-z_]+')
  if kind == 'accepted' or kind == 'delivered' or kind == 'opened' or kind == 'clicked'
      or kind == 'failed' or kind == 'dropped' then
    return 0
  end
else
  cur = 'queued'
end
redis.call('HSET', KEYS[1], 'state', a.label, 'at', a.at)
for k, v in pairs(a.meta) do
  redis.call('HSET', KEYS[1], k, v)
end
redis.call('HINCRBY', KEYS[3], 'n:' .. cur, -1)
redis.call('HINCRBY', KEYS[3], 'n:' .. a.label, 1)
for _, line in ipairs(a.history) do
  redis.call('RPUSH', KEYS[2], line)
end
local first = a.dead and 8 or 6
if cur ~= a.label then
  count(a.stages, first, a.ttls)
  log(KEYS[4], a.minid, a.event)
end
local settled = false
if a.label ~= 'deferred' and redis.call('EXISTS', KEYS[5]) == 1 then
  if a.label == 'accepted' and a.meta.ch == 'sms' then
    local label, part, n, got, at = parts_verdict(KEYS[5])
    if label then
      redis.call('DEL', KEYS[5])
      sms_settle(KEYS[1], KEYS[2], KEYS[3], KEYS[4], first, a.ttls, a.minid, label, part, n, math.max(at, a.at),
        a.event, ' (arrived before accepted)')
      settled = true
    else
      redis.call('HDEL', KEYS[5], '@parked') -- no longer parked: waiting for the other parts
    end
  else
    local _, _, _, got = parts_verdict(KEYS[5])
    redis.call('DEL', KEYS[5])
    redis.call('RPUSH', KEYS[2], cjson.encode({at = a.at, state = 'receipt_ignored', channel = 'sms',
      detail = got .. ' SMS part receipt(s) came before the message ended ' .. a.label
        .. (a.label == 'accepted' and ' by ' .. tostring(a.meta.ch) or '') .. '; not applied'}))
  end
end
if a.dead then
  local z, h, d = KEYS[6], KEYS[7], a.dead
  local score = math.max(a.at * 1000, tonumber(redis.call('HGET', h, '#last') or '0') + 1)
  local s = string.format('%.0f', score)
  redis.call('ZADD', z, s, d.id)
  redis.call('HSET', h, '#last', s, d.id, d.letter, 'i:' .. d.id, d.item)
  -- bounded: nothing older than the retention, at most d.max letters (oldest go first)
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', string.format('(%.0f', (a.at - a.retention) * 1000),
    'LIMIT', 0, 100)
  local over = redis.call('ZCARD', z) - #old - d.max
  if over > 0 then
    local extra = redis.call('ZRANGE', z, #old, #old + math.min(over, 100) - 1)
    for _, id in ipairs(extra) do old[#old + 1] = id end
  end
  for _, id in ipairs(old) do
    redis.call('ZREM', z, id)
    redis.call('HDEL', h, id, 'i:' .. id)
  end
  redis.call('PEXPIRE', z, a.retention)
  redis.call('PEXPIRE', h, a.retention)
end
redis.call('PEXPIRE', KEYS[1], a.retention)
redis.call('PEXPIRE', KEYS[2], a.retention)
if cur == a.label then return 2 end
if settled then return 3 end
return 1
