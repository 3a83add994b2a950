-- Moves re-driven messages of one batch (one slot: the batch's tag) from 'failed:<reason>' back to
-- 'queued' (batch counts and history follow), before their redrive entry is processed. Safe to run
-- again for the same messages (a replay of the entry): a message already queued is left alone.
-- KEYS[1] the batch hash, KEYS[2..] message chunks.
-- ARGV[1] now (ms), ARGV[2] the history detail, ARGV[3..] 'chunk key index US field' per message.
-- Reply: one char per message: '1' moved back to queued, '2' not ended (queued or deferred: process
-- it), '0' do not process it (its batch has expired, or it ended otherwise meanwhile).
local now = tonumber(ARGV[1])
local b = KEYS[1]
local alive = redis.call('EXISTS', b) == 1
local codes = {}
for j = 3, #ARGV do
  local ki, fld = string.match(ARGV[j], '^([^\31]*)\31(.*)$')
  local c = KEYS[tonumber(ki)]
  local code = '0'
  if alive then
    local f, rest = rec_parse(redis.call('HGET', c, fld) or nil)
    local cur = f and f[1] or nil
    if cur and string.sub(cur, 1, 7) == 'failed:' then
      f[1], f[2] = 'queued', b36(now)
      redis.call('HSET', c, fld, rec_join(f, rest .. hist(now, 'redriven', '', '', ARGV[2])))
      redis.call('HINCRBY', b, 'n:' .. cur, -1)
      redis.call('HINCRBY', b, 'n:queued', 1)
      code = '1'
    elseif cur == nil or cur == 'queued' or string.sub(cur, 1, 8) == 'deferred' then
      code = '2'
    end
  end
  codes[#codes + 1] = code
end
return table.concat(codes)
