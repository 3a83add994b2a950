-- Moves one message to a new state, once: a message already terminal stays as it is.
-- KEYS[1] message hash, KEYS[2] history list, KEYS[3] batch hash, KEYS[4] the app's event log,
-- KEYS[5..] funnel counter hashes (batch, app, campaign, variant, channel, time buckets).
-- ARGV[1] JSON: {label: 'deferred'|'accepted'|'failed:<r>'|'dropped:<r>', at, retention (ms),
--   history: [JSON lines], meta: {field: value} written on the message (user, channel, labels),
--   stages: [funnel stages to count], ttls: [per counter key], event: JSON for the event log, minid}.
-- Batch state counts live in the batch hash as n:<label>; 'queued' starts at the accepted count.
-- Terminal states (accepted, delivered, opened, clicked, failed, dropped) never change here
-- (receipt.lua moves an accepted message on). Reply: 1 applied, 0 already terminal.
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
if cur ~= a.label then
  count(a.stages, 5, a.ttls)
  log(KEYS[4], a.minid, a.event)
end
redis.call('PEXPIRE', KEYS[1], a.retention)
redis.call('PEXPIRE', KEYS[2], a.retention)
return 1
