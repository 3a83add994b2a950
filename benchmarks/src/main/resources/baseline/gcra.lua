-- Per-user rate limit, GCRA, many users in one call (one call per ring-handler batch).
-- KEYS[i], i <= n: rate-limit key of check i (hash-tagged by app and user).
-- KEYS[n+1]: this call's request key (Keys.rateLimitRequest): the verdicts are stored there for
--   ARGV[1] ms, and a call with the same request key returns them without touching the limits,
--   so a retry of a call whose reply was lost (timeout, dropped connection) consumes nothing twice.
-- ARGV[3i-1], ARGV[3i], ARGV[3i+1]: emission interval ms, burst tolerance ms, deadline (epoch ms).
-- Reply per check: 0 = send now; -1 = the first free slot is after the deadline (nothing
-- reserved); otherwise the epoch ms of the slot reserved for this message (deferral).
-- A deferred message keeps its slot: re-admitting it later does not call this script again.
local n = #KEYS - 1
local request = KEYS[n + 1]
local done = redis.call('GET', request)
if done then
  local out = {}
  for v in string.gmatch(done, '[^,]+') do
    out[#out + 1] = tonumber(v)
  end
  return out
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 1, n do
  local key = KEYS[i]
  local interval = tonumber(ARGV[i * 3 - 1])
  local tolerance = tonumber(ARGV[i * 3])
  local deadline = tonumber(ARGV[i * 3 + 1])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local newTat = tat + interval
  local allowAt = newTat - tolerance
  if allowAt <= now then
    redis.call('SET', key, string.format('%.3f', newTat), 'PX', math.ceil(newTat - now) + 1000)
    out[i] = 0
  elseif allowAt <= deadline then
    redis.call('SET', key, string.format('%.3f', newTat), 'PX', math.ceil(newTat - now) + 1000)
    out[i] = math.ceil(allowAt)
  else
    out[i] = -1
  end
end
local text = {}
for i = 1, n do
  text[i] = string.format('%d', out[i])
end
redis.call('SET', request, table.concat(text, ','), 'PX', ARGV[1])
return out
