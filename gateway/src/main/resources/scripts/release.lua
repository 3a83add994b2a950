-- Gives back what an ended marketing message held in its user's admission key (Keys.admission,
-- admit.lua): its claim, and, when it was admitted but not accepted, its place: the logged send,
-- and one from the count of every rule whose scope it is in and whose counter still counts it
-- (the send was admitted at or after the counter's boundary).
-- KEYS[1] the user's admission key, KEYS[2] its log (Keys.admissionLog). ARGV[1] the message id, ARGV[2] '1' when it keeps its place
-- (accepted, or never admitted), ARGV[3] the claim's member (c|id|priority|category); then the
-- app's rules, three values each: id, scope kind ('all', 'channel', 'category'), scope value.
-- Reply: the number of members removed. The claim: one ZREM by name. A place given back: the send
-- is found in the log (a user's sends of the longest cap window).
local key = KEYS[1]
local SCALE = 2048
local removed = redis.call('ZREM', key, ARGV[3])
local z = {}
if removed > 0 then
  local n = tonumber(redis.call('ZSCORE', key, 'n')) or 1
  z[#z + 1] = string.format('%d', math.max(0, n - removed))
  z[#z + 1] = 'n'
end
if ARGV[2] ~= '1' then
  local sent = 's|' .. ARGV[1] .. '|'
  local log = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
  for e = 1, #log, 2 do
    local m = log[e]
    if string.sub(m, 1, #sent) == sent then
      local at = tonumber(log[e + 1])
      local ch, cat = string.match(m, '^s|[^|]*|([^|]*)|(.*)$')
      removed = removed + redis.call('ZREM', KEYS[2], m)
      if redis.call('EXISTS', KEYS[2]) == 0 then
        -- the log is gone: its next send must set its expiry (admit.lua does when 'm' is due)
        z[#z + 1] = '0'
        z[#z + 1] = 'm'
      end
      for j = 4, #ARGV, 3 do
        local kind, value = ARGV[j + 1], ARGV[j + 2]
        if kind == 'all' or (kind == 'channel' and (ch == value or (value == 'push' and (ch == 'apns' or ch == 'fcm'))))
            or (kind == 'category' and cat == value) then
          local counter = 'k|' .. ARGV[j]
          local s = tonumber(redis.call('ZSCORE', key, counter))
          if s then
            local b = math.floor(s / SCALE)
            if s - b * SCALE > 0 and at >= b then
              z[#z + 1] = string.format('%d', s - 1)
              z[#z + 1] = counter
            end
          end
        end
      end
      break
    end
  end
end
if #z > 0 then
  redis.call('ZADD', key, unpack(z))
end
return removed
