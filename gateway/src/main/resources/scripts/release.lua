-- Gives back what an ended marketing message held in its user's admission key (Keys.admission,
-- admit.lua): its claim, and, unless it was accepted, its reserved send.
-- KEYS[1] the user's admission key. ARGV[1] the message id, ARGV[2] '1' when accepted.
-- Reply: the number of members removed. The log holds a user's sends of the longest cap window
-- and their pending claims: small.
local removed = 0
local claim = 'c|' .. ARGV[1] .. '|'
local sent = 's|' .. ARGV[1] .. '|'
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(m, 1, #claim) == claim or (ARGV[2] ~= '1' and string.sub(m, 1, #sent) == sent) then
    removed = removed + redis.call('ZREM', KEYS[1], m)
  end
end
return removed
