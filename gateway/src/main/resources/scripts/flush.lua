-- Moves the facts of record.lua / receipt.lua calls into an app's aggregates, exactly once per
-- call (one slot: the app's tag). A call's marker (batch id | request id) is added to the app's
-- marker set before the call runs; the first flush that removes it applies the call's deltas, any
-- later one (a retry, or the sweeper finding the same outbox) finds it gone and applies nothing.
-- KEYS[1] the app's marker zset, KEYS[2] the app's event log, KEYS[3..] counter hashes.
-- ARGV[1] event log MINID, ARGV[2] now (ms), ARGV[3 .. 2 + #KEYS - 2] per counter key
-- 'expireAt,refreshBelow' (ms; the key gets PEXPIREAT expireAt when it has no expiry or less than
-- refreshBelow left; '0,0' never expires), then 3 per call: marker, deltas (key index US stage US n
-- US ...), event lines (RS-joined, the first naming its batch; see MessageStore.EventLog).
-- Deltas of every applied call are added up first: each counter hash gets one HMGET and one HSET.
-- Reply: one char per call: '1' applied, '0' already flushed.
local nk = #KEYS - 2
local now = tonumber(ARGV[2])
local sum = {}
local lines = {}
local out = {}
local i = 3 + nk
while i <= #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    out[#out + 1] = '1'
    local d = ARGV[i + 1]
    if d ~= '' then
      local parts = {}
      for x in string.gmatch(d .. '\31', '([^\31]*)\31') do parts[#parts + 1] = x end
      for p = 1, #parts - 2, 3 do
        local ki = tonumber(parts[p])
        local t = sum[ki]
        if not t then t = {}; sum[ki] = t end
        t[parts[p + 1]] = (t[parts[p + 1]] or 0) + tonumber(parts[p + 2])
      end
    end
    if ARGV[i + 2] ~= '' then lines[#lines + 1] = ARGV[i + 2] end
  else
    out[#out + 1] = '0'
  end
  i = i + 3
end
for ki, t in pairs(sum) do
  local key = KEYS[2 + ki]
  local fields = {}
  for s, _ in pairs(t) do fields[#fields + 1] = s end
  local cur = redis.call('HMGET', key, unpack(fields))
  local args = {}
  for n, s in ipairs(fields) do
    args[#args + 1] = s
    args[#args + 1] = tostring((tonumber(cur[n]) or 0) + t[s])
  end
  redis.call('HSET', key, unpack(args))
  local at, below = string.match(ARGV[2 + ki], '^(%d+),(%d+)$')
  at, below = tonumber(at), tonumber(below)
  if at > 0 then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 or ttl < below then redis.call('PEXPIREAT', key, at) end
  end
end
if #lines > 0 then
  redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[1], '*', 'p', table.concat(lines, '\30'))
end
return table.concat(out)
