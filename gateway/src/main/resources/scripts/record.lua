-- Records the outcomes of many messages of one batch, in one call (one slot: the batch's tag).
-- A terminal state never changes here (receipt.lua moves an accepted message on), which makes
-- replays and retries of the record stage harmless; SMS part receipts parked before 'accepted'
-- (receipt.lua) are applied right after it, in this call, when the SMS channel accepted the message;
-- any other end discards them with a history line saying why.
-- KEYS[1] batch hash, KEYS[2] the batch's outbox, KEYS[3..] message chunks and SMS part hashes.
-- ARGV[1] request id (a retry of the same call answers as the first), ARGV[2] retention of a new
-- chunk (ms), ARGV[3] outbox lifetime (ms), then one per message, 12 GS-separated (\29) fields: chunk
-- key index, field (index),
-- label ('deferred' | 'deferred:<reason>' | 'accepted' | 'failed:<r>' | 'dropped:<r>'), at (ms), channel, user, campaign,
-- variant, history entries (RS-prefixed), SMS part key index (0: none), devices invalidated,
-- dead letter ('' or id US letter US item US max: filed only when the change applies).
-- Batch counts (n:<label>) and the batch funnel (f:<stage>) are added up over the call and written
-- with one HSET; the facts of the changes that applied go to the outbox for flush.lua.
-- Reply {codes, facts, letters}: codes has one char per message: '1' applied, '0' already terminal,
-- '2' already in this state (a retried 'deferred': counts nothing), '3' applied and parked SMS
-- receipts then settled it too (its facts follow the acceptance's).
local rid, retention, outboxTtl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local prior = redis.call('HMGET', KEYS[2], rid, rid .. ':l')
if prior[1] then
  local s = prior[1]
  local e = string.find(s, RS, 1, true)
  return {e and string.sub(s, 1, e - 1) or s, e and string.sub(s, e + 1) or '', prior[2] or ''}
end
local A = {}
local byChunk = {}
for j = 4, #ARGV do
  local a = args_of(ARGV[j])
  A[#A + 1] = a
  local ki = tonumber(a[1])
  local t = byChunk[ki]
  if not t then t = {}; byChunk[ki] = t end
  t[#t + 1] = a[2]
end
local vals = load_chunks(3, byChunk)
local dirty = {}
local counts = {}
local codes, facts, letters = {}, {}, {}
for _, a in ipairs(A) do
  local ki, fld, label, at = tonumber(a[1]), a[2], a[3], tonumber(a[4])
  local f, rest = rec_parse(vals[ki][fld] or nil)
  local cur = f and f[1] or 'queued'
  if is_terminal(cur) then
    codes[#codes + 1] = '0'
  else
    local ch = a[5]
    if ch == '' and f then ch = f[3] end
    local nf = {label, b36(at), ch, a[6], a[7], a[8], f and f[7] or ''}
    rest = rest .. a[9]
    bump(counts, 'n:' .. cur, -1)
    bump(counts, 'n:' .. label, 1)
    local code = '2'
    if cur ~= label then
      code = '1'
      local stages = stages_of(label)
      for _ = 1, tonumber(a[11]) do stages[#stages + 1] = 'invalidated' end
      for _, s in ipairs(stages) do bump(counts, 'f:' .. s, 1) end
      facts[#facts + 1] = fact(fld, label, at, nf, '', stages)
      if a[12] ~= '' then letters[#letters + 1] = a[12] end
    end
    local pk = tonumber(a[10])
    if pk > 0 and string.sub(label, 1, 8) ~= 'deferred' and redis.call('EXISTS', KEYS[pk]) == 1 then
      if label == 'accepted' and ch == 'sms' then
        local settled, part, n, _, pat = parts_verdict(KEYS[pk])
        if settled then
          redis.call('DEL', KEYS[pk])
          local sat = math.max(pat, at)
          nf[1], nf[2] = settled, b36(sat)
          rest = rest .. hist(sat, settled, 'sms', '', sms_detail(settled, part, n, ' (arrived before accepted)'))
          bump(counts, 'n:accepted', -1)
          bump(counts, 'n:' .. settled, 1)
          local stages = stages_of(settled)
          for _, s in ipairs(stages) do bump(counts, 'f:' .. s, 1) end
          facts[#facts + 1] = fact(fld, settled, sat, nf, '', stages)
          code = '3'
        else
          redis.call('HDEL', KEYS[pk], '@parked') -- no longer parked: waiting for the other parts
        end
      else
        local _, _, _, got = parts_verdict(KEYS[pk])
        redis.call('DEL', KEYS[pk])
        rest = rest .. hist(at, 'receipt_ignored', 'sms', '', got .. ' SMS part receipt(s) came before the message ended '
          .. label .. (label == 'accepted' and ' by ' .. ch or '') .. '; not applied')
      end
    end
    codes[#codes + 1] = code
    vals[ki][fld] = rec_join(nf, rest)
    local d = dirty[ki]
    if not d then d = {}; dirty[ki] = d end
    d[fld] = true
  end
end
store_chunks(vals, dirty, retention)
add_counts(KEYS[1], counts)
local c, fs, ls = table.concat(codes), table.concat(facts, RS), table.concat(letters, RS)
if #facts > 0 or #letters > 0 then
  outbox_put(KEYS[2], rid, c .. RS .. fs, ls, outboxTtl)
end
return {c, fs, ls}
