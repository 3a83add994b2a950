-- Adds opens and clicks to one user's engagement hash (Keys.engagement: lastOpen, lastClick, opens
-- by hour of day h0..h23 (UTC), opens), with one HMGET and one HSET.
-- KEYS[1] the engagement hash. ARGV[1] last open (ms, 0: none), ARGV[2] last click (ms, 0: none),
-- ARGV[3..] hour, opens pairs.
local fields = {'lastOpen', 'lastClick', 'opens'}
for j = 3, #ARGV, 2 do fields[#fields + 1] = 'h' .. ARGV[j] end
local cur = redis.call('HMGET', KEYS[1], unpack(fields))
local args = {}
local lo, lc = tonumber(ARGV[1]), tonumber(ARGV[2])
if lo > 0 and lo > (tonumber(cur[1]) or 0) then args[#args + 1] = 'lastOpen'; args[#args + 1] = ARGV[1] end
if lc > 0 and lc > (tonumber(cur[2]) or 0) then args[#args + 1] = 'lastClick'; args[#args + 1] = ARGV[2] end
local opens = 0
for j = 3, #ARGV, 2 do
  local n = tonumber(ARGV[j + 1])
  opens = opens + n
  args[#args + 1] = 'h' .. ARGV[j]
  args[#args + 1] = tostring((tonumber(cur[4 + (j - 3) / 2]) or 0) + n)
end
if opens > 0 then args[#args + 1] = 'opens'; args[#args + 1] = tostring((tonumber(cur[3]) or 0) + opens) end
if #args > 0 then redis.call('HSET', KEYS[1], unpack(args)) end
return 1
