-- Shared prelude of transition.lua and receipt.lua (Redis.Script concatenates the files).
-- count(stages, first, ttls): HINCRBY every counter hash KEYS[first..] by 1 for each stage;
-- ttls[i] (ms, 0 = leave) is the expiry of KEYS[first + i - 1] (time buckets expire).
local function count(stages, first, ttls)
  for i = first, #KEYS do
    for _, s in ipairs(stages) do
      redis.call('HINCRBY', KEYS[i], s, 1)
    end
    local ttl = tonumber(ttls[i - first + 1] or 0)
    if ttl and ttl > 0 then
      redis.call('PEXPIRE', KEYS[i], ttl)
    end
  end
end
-- log(stream, minid, event): appends one event (JSON) to the app's event log, trimmed by time.
local function log(stream, minid, event)
  redis.call('XADD', stream, 'MINID', '~', minid, '*', 'e', event)
end
