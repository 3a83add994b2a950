-- Shared prelude of transition.lua and receipt.lua (after funnel.lua): the SMS part receipts of
-- one message, kept in a hash (Keys.smsParts): n = the part count, '<part>' = that part's receipt
-- {s = 'delivered'|'failed', r = reason, at}, '@parked' = when the first one came before the
-- message was recorded as accepted. A message is delivered when every part is; one failed part
-- fails it, and the lowest failed part is the one named.
-- parts_verdict(key) -> label ('delivered' | 'failed:<reason>' | nil while parts are missing),
--   the failed part (or nil), the part count, the number of part receipts, the latest receipt time.
local function parts_verdict(key)
  local h = redis.call('HGETALL', key)
  local n, got, delivered, failedPart, failedReason, at = 0, 0, 0, nil, nil, 0
  for i = 1, #h, 2 do
    local f, v = h[i], h[i + 1]
    if f == 'n' then
      n = tonumber(v)
    elseif f ~= '@parked' then
      local p = tonumber(f)
      local r = cjson.decode(v)
      got = got + 1
      if r.at > at then at = r.at end
      if r.s == 'delivered' then
        delivered = delivered + 1
      elseif not failedPart or p < failedPart then
        failedPart, failedReason = p, r.r or 'undelivered'
      end
    end
  end
  if failedPart then return 'failed:' .. failedReason, failedPart, n, got, at end
  if n > 0 and delivered >= n then return 'delivered', nil, n, got, at end
  return nil, nil, n, got, at
end

-- sms_settle: moves an accepted message to the label parts_verdict gave, with its counters
-- (KEYS from 'first' on), its history line (naming the failed part; 'note' is appended) and its
-- event (acceptedEvent, a JSON event of this message, with the new event, reason and time).
local function sms_settle(msgKey, histKey, batchKey, logKey, first, ttls, minid, label, part, n, at, acceptedEvent, note)
  local detail
  local colon = string.find(label, ':', 1, true)
  local stages = {label}
  local e = cjson.decode(acceptedEvent)
  e.at = at
  if colon then
    local reason = string.sub(label, colon + 1)
    stages = {string.sub(label, 1, colon - 1), label}
    e.event = 'failed'
    e.reason = reason
    detail = n > 1 and ('receipt from smsc: part ' .. part .. '/' .. n .. ' ' .. reason) or 'receipt from smsc'
  else
    e.event = label
    e.reason = nil
    detail = n > 1 and ('receipt from smsc: all ' .. n .. ' parts delivered') or 'receipt from smsc'
  end
  detail = detail .. note
  redis.call('HSET', msgKey, 'state', label, 'at', at)
  redis.call('HINCRBY', batchKey, 'n:accepted', -1)
  redis.call('HINCRBY', batchKey, 'n:' .. label, 1)
  redis.call('RPUSH', histKey, cjson.encode({at = at, state = label, channel = 'sms', detail = detail}))
  count(stages, first, ttls)
  log(logKey, minid, cjson.encode(e))
end
