-- Merges a patch into a user's profile (field '@profile' of the user's hash), atomically.
-- KEYS[1] the user's hash; ARGV[1] the patch (JSON object; null removes a field; 'consent' merges
-- per channel); ARGV[2] time (epoch ms). Reply: {profile JSON, number of channels that turned
-- opted_out by this patch} (the caller counts opt-outs).
local cur = redis.call('HGET', KEYS[1], '@profile')
local p = {}
if cur then p = cjson.decode(cur) end
local patch = cjson.decode(ARGV[1])
local optOuts = 0
for k, v in pairs(patch) do
  if k == 'consent' then
    if type(p.consent) ~= 'table' then p.consent = {} end
    for ch, c in pairs(v) do
      local before = p.consent[ch]
      if c.state == 'opted_out' and not (type(before) == 'table' and before.state == 'opted_out') then
        optOuts = optOuts + 1
      end
      p.consent[ch] = c
    end
  elseif v == cjson.null then
    p[k] = nil
  else
    p[k] = v
  end
end
p.updatedAt = tonumber(ARGV[2])
local out = cjson.encode(p)
redis.call('HSET', KEYS[1], '@profile', out)
return {out, optOuts}
