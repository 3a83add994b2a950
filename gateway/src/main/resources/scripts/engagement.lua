-- Adds opens, clicks and app opens to one user's engagement hash (Keys.engagement): lastOpen,
-- lastClick, opens (total), and h0..h23 the engagement by hour of day (UTC; read in the user's
-- zone), exponentially decayed: every weight halves per half-life, so last month's habits fade
-- behind this week's. dt is the time the weights were last decayed to.
-- KEYS[1] the engagement hash. ARGV[1] last open (ms, 0: none), ARGV[2] last click (ms, 0: none),
-- ARGV[3] now (ms), ARGV[4] half-life (ms), ARGV[5] opens to add to the total, ARGV[6..] hour,
-- weight pairs (each event weighted 2^(-(now - at) / half-life) by the caller).
local fields = {'lastOpen', 'lastClick', 'opens', 'dt'}
for h = 0, 23 do fields[#fields + 1] = 'h' .. h end
local cur = redis.call('HMGET', KEYS[1], unpack(fields))
local now, half = tonumber(ARGV[3]), tonumber(ARGV[4])
local dt = tonumber(cur[4]) or now
local factor = 1
if now > dt then factor = math.pow(0.5, (now - dt) / half) end
local w = {}
for h = 0, 23 do w[h] = (tonumber(cur[5 + h]) or 0) * factor end
local opens = tonumber(ARGV[5])
for j = 6, #ARGV, 2 do
  local h, n = tonumber(ARGV[j]), tonumber(ARGV[j + 1])
  w[h] = w[h] + n
end
local args = {'dt', tostring(math.max(now, dt))}
for h = 0, 23 do
  if w[h] > 0.0001 then
    args[#args + 1] = 'h' .. h
    args[#args + 1] = string.format('%.6g', w[h])
  elseif cur[5 + h] then
    redis.call('HDEL', KEYS[1], 'h' .. h)
  end
end
local lo, lc = tonumber(ARGV[1]), tonumber(ARGV[2])
if lo > 0 and lo > (tonumber(cur[1]) or 0) then args[#args + 1] = 'lastOpen'; args[#args + 1] = ARGV[1] end
if lc > 0 and lc > (tonumber(cur[2]) or 0) then args[#args + 1] = 'lastClick'; args[#args + 1] = ARGV[2] end
if opens > 0 then args[#args + 1] = 'opens'; args[#args + 1] = tostring((tonumber(cur[3]) or 0) + opens) end
redis.call('HSET', KEYS[1], unpack(args))
return opens
