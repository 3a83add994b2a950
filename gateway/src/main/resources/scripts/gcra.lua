-- Per-user rate limit, GCRA, many users in one call (one call per ring-handler batch).
-- KEYS[i]: rate-limit key of check i (hash-tagged by app and user).
-- ARGV[3i-2], ARGV[3i-1], ARGV[3i]: emission interval ms, burst tolerance ms, deadline (epoch ms).
-- Reply per check: 0 = send now; -1 = the first free slot is after the deadline (nothing
-- reserved); otherwise the epoch ms of the slot reserved for this message (deferral).
-- A deferred message keeps its slot: re-admitting it later does not call this script again.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[i * 3 - 2])
  local tolerance = tonumber(ARGV[i * 3 - 1])
  local deadline = tonumber(ARGV[i * 3])
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
return out
