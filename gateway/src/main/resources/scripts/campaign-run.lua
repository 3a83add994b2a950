-- A campaign's run (Keys.campaignRun): the lease of the one node that feeds it and the
-- checkpoint of its fan-out, on Redis's clock so that the nodes' clocks never matter.
-- KEYS[1] the run hash. ARGV[1] the operation, ARGV[2] the caller's owner token, ARGV[3] lease (ms).
--   acquire: takes the lease when nobody holds it, it expired, or the caller holds it.
--            Reply {1, field, value, ...} (the whole run) or {0, owner, ms left}.
--   renew:   extends the caller's lease. Reply {1} or {0} (lost: stop feeding).
--   step:    ARGV[4] run, ARGV[5] the chunk just fed, ARGV[6] the cursor after it, ARGV[7] users
--            fed: moves the checkpoint on when the caller holds the lease and the run is at that
--            chunk. Reply {1}; {0} lease lost; {-1} the run is elsewhere (nothing written).
--   set:     ARGV[4..] field/value pairs, written when the caller holds the lease; a field
--            prefixed '?' is written only when absent (first writer wins), one prefixed '-' is
--            deleted (its value ignored). Reply {1} or {0}.
--   release: lets the lease go if the caller holds it. Reply {1}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local k, op, me = KEYS[1], ARGV[1], ARGV[2]
local cur = redis.call('HMGET', k, 'owner', 'until')
local untilv = tonumber(cur[2] or '0')
local mine = cur[1] == me and untilv > now
if op == 'acquire' then
  if cur[1] and cur[1] ~= me and untilv > now then
    return {0, cur[1], untilv - now}
  end
  redis.call('HSET', k, 'owner', me, 'until', now + tonumber(ARGV[3]))
  local all = redis.call('HGETALL', k)
  table.insert(all, 1, 1)
  return all
end
if op == 'release' then
  if cur[1] == me then
    redis.call('HDEL', k, 'owner', 'until')
  end
  return {1}
end
if not mine then
  return {0}
end
redis.call('HSET', k, 'until', now + tonumber(ARGV[3]))
if op == 'step' then
  local at = redis.call('HMGET', k, 'run', 'chunk')
  if at[1] ~= ARGV[4] or (at[2] or '0') ~= ARGV[5] then
    return {-1}
  end
  redis.call('HSET', k, 'chunk', tonumber(ARGV[5]) + 1, 'cursor', ARGV[6])
  redis.call('HINCRBY', k, 'fed', tonumber(ARGV[7]))
  return {1}
end
if op == 'set' then
  for i = 4, #ARGV - 1, 2 do
    local f = ARGV[i]
    if string.sub(f, 1, 1) == '?' then
      redis.call('HSETNX', k, string.sub(f, 2), ARGV[i + 1])
    elseif string.sub(f, 1, 1) == '-' then
      redis.call('HDEL', k, string.sub(f, 2))
    else
      redis.call('HSET', k, f, ARGV[i + 1])
    end
  end
  return {1}
end
return {1} -- renew
