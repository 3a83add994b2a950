-- Shared prelude of record.lua, receipt.lua and parked-receipts.lua: the compact message record.
-- A batch's messages live in chunk hashes (Keys.messages: 128 messages per chunk, field = the
-- message's index), one string per message:
--   head: state US at US channel US user US campaign US variant US dismissed   (US = \31)
--   then one history entry per change, each: RS at US state US channel US device US detail (RS = \30)
-- Times are epoch ms in base 36. A message with no record is 'queued'.
-- A fact is what one applied change means outside the batch (funnel counters of the app, the
-- event log, engagement): idx US event US reason US at(ms) US user US channel US campaign US
-- variant US action US stages (comma-separated). Facts of one call are RS-joined in the batch's
-- outbox (Keys.outbox) under the call's request id, in the same script as the change itself, and
-- moved into the app's counters by flush.lua exactly once (MessageStore).
local US, RS = '\31', '\30'
local TERMINAL = {accepted = true, delivered = true, opened = true, clicked = true, failed = true, dropped = true}

local function b36(n)
  local d = '0123456789abcdefghijklmnopqrstuvwxyz'
  local s = ''
  n = math.floor(n)
  repeat
    local r = n % 36
    s = string.sub(d, r + 1, r + 1) .. s
    n = (n - r) / 36
  until n == 0
  return s
end

-- rec_parse(value) -> head fields (7, strings) and the history part (leading RS included).
local function rec_parse(v)
  if not v then return nil, '' end
  local e = string.find(v, RS, 1, true)
  local head = e and string.sub(v, 1, e - 1) or v
  local rest = e and string.sub(v, e) or ''
  local f = {}
  for x in string.gmatch(head .. US, '([^\31]*)\31') do f[#f + 1] = x end
  return f, rest
end

-- One message's arguments: GS-separated (\29) fields.
local function args_of(s)
  local t = {}
  for x in string.gmatch(s .. '\29', '([^\29]*)\29') do t[#t + 1] = x end
  return t
end

local function rec_join(f, rest)
  return table.concat(f, US, 1, 7) .. rest
end

local function kind_of(label)
  return string.match(label, '^[a-z_]+')
end

local function is_terminal(label)
  return label ~= nil and TERMINAL[kind_of(label)] == true
end

-- The stages a label counts in: the label and, for failures and drops, its kind.
local function stages_of(label)
  local colon = string.find(label, ':', 1, true)
  if colon then return {string.sub(label, 1, colon - 1), label} end
  return {label}
end

local function hist(at, state, ch, device, detail)
  return RS .. b36(at) .. US .. state .. US .. (ch or '') .. US .. (device or '') .. US .. (detail or '')
end

-- fact(idx, label, at, head fields, action, stages): event and reason from the label.
local function fact(idx, label, at, f, action, stages)
  local colon = string.find(label, ':', 1, true)
  local event = colon and string.sub(label, 1, colon - 1) or label
  local reason = colon and string.sub(label, colon + 1) or ''
  return idx .. US .. event .. US .. reason .. US .. string.format('%.0f', at) .. US .. (f[4] or '') .. US
    .. (f[3] or '') .. US .. (f[5] or '') .. US .. (f[6] or '') .. US .. (action or '') .. US
    .. table.concat(stages, ',')
end

-- The SMS part receipts of one message (Keys.smsParts): n = the part count, '<part>' = that
-- part's receipt {s = 'delivered'|'failed', r = reason, at}, '@parked' = when the first one came
-- before the message was recorded as accepted. Delivered when every part is; one failed part
-- fails it, and the lowest failed part is the one named.
-- parts_verdict(key) -> label (nil while parts are missing), failed part, part count, receipts, latest at.
local function parts_verdict(key)
  local h = redis.call('HGETALL', key)
  local n, got, delivered, failedPart, failedReason, at = 0, 0, 0, nil, nil, 0
  for i = 1, #h, 2 do
    local k, v = h[i], h[i + 1]
    if k == 'n' then
      n = tonumber(v)
    elseif k ~= '@parked' then
      local p = tonumber(k)
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

-- The history detail of an SMS settled by its part receipts.
local function sms_detail(label, part, n, note)
  local colon = string.find(label, ':', 1, true)
  local d
  if colon then
    d = n > 1 and ('receipt from smsc: part ' .. part .. '/' .. n .. ' ' .. string.sub(label, colon + 1))
      or 'receipt from smsc'
  else
    d = n > 1 and ('receipt from smsc: all ' .. n .. ' parts delivered') or 'receipt from smsc'
  end
  return d .. note
end

-- Batch hash counters: adds deltas {field = n} with one HMGET and one HSET.
local function add_counts(key, deltas)
  local fields = {}
  for k, d in pairs(deltas) do
    if d ~= 0 then fields[#fields + 1] = k end
  end
  if #fields == 0 then return end
  local cur = redis.call('HMGET', key, unpack(fields))
  local args = {}
  for i, k in ipairs(fields) do
    args[#args + 1] = k
    args[#args + 1] = tostring((tonumber(cur[i]) or 0) + deltas[k])
  end
  redis.call('HSET', key, unpack(args))
end

local function bump(t, k, d)
  t[k] = (t[k] or 0) + d
end

-- Records the call's facts (and letters) under its request id; the outbox key expires outboxTtl
-- after its first use (refreshed when less than half is left), long after any flush.
local function outbox_put(key, rid, value, letters, outboxTtl)
  if letters ~= '' then
    redis.call('HSET', key, rid, value, rid .. ':l', letters)
  else
    redis.call('HSET', key, rid, value)
  end
  local ttl = redis.call('PTTL', key)
  if ttl < outboxTtl / 2 then redis.call('PEXPIRE', key, outboxTtl) end
end

-- Chunk values: loads the given fields of each chunk (one HMGET per chunk).
local function load_chunks(first, fieldsByChunk)
  local vals = {}
  for ki, fields in pairs(fieldsByChunk) do
    local got = redis.call('HMGET', KEYS[ki], unpack(fields))
    local m = {}
    for i, fld in ipairs(fields) do m[fld] = got[i] or false end
    vals[ki] = m
  end
  return vals
end

-- Writes the changed values of each chunk (one HSET per chunk); a new chunk expires after retention.
local function store_chunks(vals, dirty, retention)
  for ki, fields in pairs(dirty) do
    local args = {}
    for fld, _ in pairs(fields) do
      args[#args + 1] = fld
      args[#args + 1] = vals[ki][fld]
    end
    redis.call('HSET', KEYS[ki], unpack(args))
    if redis.call('PTTL', KEYS[ki]) < 0 then redis.call('PEXPIRE', KEYS[ki], retention) end
  end
end
