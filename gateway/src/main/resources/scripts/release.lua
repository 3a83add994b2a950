-- Gives back what an ended marketing message held in its user's policy keys: its claim, and,
-- unless it was accepted, its place in the cap log (reserved at admission, admit.lua).
-- KEYS[1] the user's cap log (Keys.capLog), KEYS[2] the user's claims (Keys.capClaims).
-- ARGV[1] the message id followed by '|' (members start with it), ARGV[2] '1' when accepted.
-- Reply: the number of members removed. The sets hold a user's sends of the longest window: small.
local removed = 0
local function drop(key)
  for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    if string.sub(m, 1, #ARGV[1]) == ARGV[1] then
      removed = removed + redis.call('ZREM', key, m)
    end
  end
end
drop(KEYS[2])
if ARGV[2] ~= '1' then drop(KEYS[1]) end
return removed
