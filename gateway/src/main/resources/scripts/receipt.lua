-- Receipts for messages of one batch, in one call (one slot: the batch's tag): from devices
-- (delivered, opened, clicked, dismissed, opted_out / disabled: an opt-out, complained, failed) or from the SMSC (one SMS part: delivered or
-- failed). State only moves forward: accepted < delivered < opened < clicked; a later stage counts
-- the stages it skipped (a click without an open counts as open and click); a repeated or older
-- receipt changes nothing. An SMS is delivered when every part is, failed as soon as one part
-- fails; a part receipt that comes before the message is recorded as accepted is parked in the
-- message's part hash, durably, and applied by record.lua when it records accepted.
-- KEYS[1] batch hash, KEYS[2] the batch's outbox, KEYS[3..] message chunks and SMS part hashes.
-- ARGV[1] request id, ARGV[2] retention of a new chunk (ms), ARGV[3] outbox lifetime (ms), ARGV[4]
-- the app, then one per receipt, 12 GS-separated fields: chunk key index, field (index), event, reason, at (ms), history
-- detail, action, part (0: a device receipt), parts, the part's receipt JSON, SMS part key index,
-- '1' when a part may be parked (else: the detail of the history line saying it was not) .. US ..
-- how long it stays parked (ms).
-- Reply {codes, facts, ''}: one char per receipt: '1' applied, '0' no-op (repeat, older stage,
-- failed / dropped), 'n' not accepted yet (device: the caller may retry; SMS part that may not be
-- parked: noted in the history), 'p' parked, 'r' part recorded (other parts missing), 'u' no such
-- message of this app. Facts as in record.lua (engagement is derived from them).
local rid, retention, outboxTtl, app = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local prior = redis.call('HGET', KEYS[2], rid)
if prior then
  local e = string.find(prior, RS, 1, true)
  return {e and string.sub(prior, 1, e - 1) or prior, e and string.sub(prior, e + 1) or '', ''}
end
local rank = {accepted = 1, delivered = 2, opened = 3, clicked = 4}
local order = {'accepted', 'delivered', 'opened', 'clicked'}
local A = {}
local byChunk = {}
for j = 5, #ARGV do
  local a = args_of(ARGV[j])
  A[#A + 1] = a
  local ki = tonumber(a[1])
  local t = byChunk[ki]
  if not t then t = {}; byChunk[ki] = t end
  t[#t + 1] = a[2]
end
local vals = load_chunks(3, byChunk)
local batchApp = redis.call('HGET', KEYS[1], 'app')
local dirty = {}
local counts = {}
local codes, facts = {}, {}
local function put(ki, fld, f, rest)
  vals[ki][fld] = rec_join(f, rest)
  local d = dirty[ki]
  if not d then d = {}; dirty[ki] = d end
  d[fld] = true
end
local function move(ki, fld, f, rest, cur, label, at, ch, detail, action, stages)
  f[1], f[2] = label, b36(at)
  bump(counts, 'n:' .. cur, -1)
  bump(counts, 'n:' .. label, 1)
  for _, s in ipairs(stages) do bump(counts, 'f:' .. s, 1) end
  put(ki, fld, f, rest .. hist(at, label, ch, '', detail))
  facts[#facts + 1] = fact(fld, label, at, f, action, stages)
end
for _, a in ipairs(A) do
  local ki, fld, event, reason, at = tonumber(a[1]), a[2], a[3], a[4], tonumber(a[5])
  local detail, action, part = a[6], a[7], tonumber(a[8])
  local f, rest = rec_parse(vals[ki][fld] or nil)
  local cur = f and f[1] or nil
  local code = '0'
  if batchApp ~= app then
    code = 'u'
  elseif part > 0 then
    local parts, pk = tonumber(a[9]), KEYS[tonumber(a[11])]
    local park, keep = string.match(a[12], '^(.*)\31(%d+)$')
    keep = tonumber(keep)
    if not cur or cur == 'queued' or string.sub(cur, 1, 8) == 'deferred' then
      if park ~= '1' then
        if park ~= '' then
          if not f then f = {'queued', '', '', '', '', '', ''} end
          put(ki, fld, f, rest .. hist(at, 'receipt_ignored', 'sms', '', park))
        end
        code = 'n'
      else
        local added = redis.call('HSETNX', pk, tostring(part), a[10])
        redis.call('HSET', pk, 'n', parts)
        redis.call('HSETNX', pk, '@parked', string.format('%.0f', at))
        redis.call('PEXPIRE', pk, keep)
        code = added == 1 and 'p' or '0'
      end
    elseif cur == 'accepted' and f[3] == 'sms' then
      local label, p, n, sat
      if parts > 1 then
        if redis.call('HSETNX', pk, tostring(part), a[10]) == 1 then
          redis.call('HSET', pk, 'n', parts)
          redis.call('PEXPIRE', pk, keep)
          local _
          label, p, n, _, sat = parts_verdict(pk)
          code = 'r'
          if label then redis.call('DEL', pk) end
        end
      else
        label = event == 'failed' and ('failed:' .. reason) or 'delivered'
        p, n, sat = 1, 1, at
      end
      if label then
        move(ki, fld, f, rest, cur, label, sat, 'sms', sms_detail(label, p, n, ''), '', stages_of(label))
        code = '1'
      end
    end
  elseif not cur or not rank[cur] then
    if not cur or cur == 'queued' or string.sub(cur, 1, 8) == 'deferred' then code = 'n' end
  elseif event == 'dismissed' then
    if f[7] == '' then
      f[7] = b36(at)
      put(ki, fld, f, rest .. hist(at, 'dismissed', f[3], '', detail))
      bump(counts, 'f:dismissed', 1)
      facts[#facts + 1] = fact(fld, 'dismissed', at, f, action, {'dismissed'})
      code = '1'
    end
  elseif event == 'opted_out' or event == 'disabled' or event == 'complained' then
    -- the user turned these pushes off (opt_out) or reported this message (complaint) after it:
    -- counted once per message, whatever comes again
    local stage = event == 'complained' and 'complaint' or 'opt_out'
    if not string.find(rest, US .. stage .. US, 1, true) then
      put(ki, fld, f, rest .. hist(at, stage, f[3], '', event))
      bump(counts, 'f:' .. stage, 1)
      facts[#facts + 1] = fact(fld, stage, at, f, action, {stage})
      code = '1'
    end
  elseif event == 'failed' then
    if cur == 'accepted' then
      local label = 'failed:' .. reason
      move(ki, fld, f, rest, cur, label, at, f[3], detail, action, {'failed', label})
      code = '1'
    end
  else
    local curRank, newRank = rank[cur], rank[event]
    if newRank and newRank > curRank then
      local stages = {}
      for r = curRank + 1, newRank do stages[#stages + 1] = order[r] end
      move(ki, fld, f, rest, cur, event, at, f[3], detail, action, stages)
      code = '1'
    end
  end
  codes[#codes + 1] = code
end
store_chunks(vals, dirty, retention)
add_counts(KEYS[1], counts)
local c, fs = table.concat(codes), table.concat(facts, RS)
if #facts > 0 then
  outbox_put(KEYS[2], rid, c .. RS .. fs, '', outboxTtl)
end
return {c, fs, ''}
