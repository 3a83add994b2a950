-- Folds a retired user's snapshot (merge-out.lua) into the target user, in the target's index
-- shard, once: tags united, attributes the target lacks added (the target's win), event counts and
-- sums added per day, the later last time kept, the day bitmaps set. The retired index is
-- remembered (mgdone), so a retried merge changes nothing.
-- KEYS[1] the shard's user data, KEYS[2] its reverse map, KEYS[3] its known-users bitmap.
-- ARGV[1] the prefix, ARGV[2] index bits per shard, ARGV[3] the target's index, ARGV[4] the target
-- user, ARGV[5] its sample bucket, ARGV[6] the retired index, ARGV[7] the snapshot JSON,
-- ARGV[8] now (epoch ms), ARGV[9] window days, ARGV[10] most tags, ARGV[11] most attributes.
-- Reply: 'ok', 'already', 'too_many_tags' or 'too_many_attributes' (nothing applied).
local P = ARGV[1]
local SIZE = 2 ^ tonumber(ARGV[2])
local idx, user, bucket, from = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local snap = cjson.decode(ARGV[7])
local now = tonumber(ARGV[8])
local today = math.floor(now / 86400000)
local window = tonumber(ARGV[9])
local off = tonumber(idx) % SIZE
if redis.call('SISMEMBER', P .. 'mgdone', from) == 1 then return 'already' end

local raw = redis.call('HGET', KEYS[1], idx)
local d
if raw then d = cjson.decode(raw) else d = {a = {}, b = tonumber(bucket)} end
-- tags
local cur = redis.call('HGET', P .. 'tg', idx)
local set, tags = {}, {}
if cur and cur ~= '' then for tag in string.gmatch(cur, '[^,]+') do set[tag] = true end end
local added = {}
for _, tag in ipairs(snap.t) do
  if not set[tag] then set[tag] = true; table.insert(added, tag) end
end
for tag in pairs(set) do table.insert(tags, tag) end
if #tags > tonumber(ARGV[10]) then return 'too_many_tags' end
-- attributes the target lacks
local newAttrs = {}
local n = 0
for _ in pairs(d.a) do n = n + 1 end
for name, a in pairs(snap.a) do
  if d.a[name] == nil then newAttrs[name] = a; n = n + 1 end
end
if n > tonumber(ARGV[11]) then return 'too_many_attributes' end

if not raw then
  redis.call('HSET', KEYS[2], idx, user)
  redis.call('SETBIT', KEYS[3], off, 1)
  redis.call('SETBIT', P .. 'b:' .. bucket, off, 1)
end
for _, tag in ipairs(added) do redis.call('SETBIT', P .. 't:' .. tag, off, 1) end
if #added > 0 then
  table.sort(tags)
  redis.call('HSET', P .. 'tg', idx, table.concat(tags, ','))
end
for name, a in pairs(newAttrs) do
  markAttr(P, name, a, idx, off, true)
  d.a[name] = a
end
redis.call('HSET', KEYS[1], idx, cjson.encode(d))
-- events
local function parse(rec, days)
  local l, rest = string.match(rec, '^([^|]*)|(.*)$')
  for dd, c, s in string.gmatch(rest, '(%d+):(%d+):?([^,]*)') do
    dd = tonumber(dd)
    if dd > today - window then
      local v = days[dd] or {0, 0}
      days[dd] = {v[1] + tonumber(c), v[2] + (tonumber(s) or 0)}
    end
  end
  return tonumber(l)
end
if snap.e then
  local names = redis.call('HGET', P .. 'en', idx)
  for name, rec in pairs(snap.e) do
    local days = {}
    local last = parse(rec, days)
    local mine = redis.call('HGET', P .. 'e:' .. name, idx)
    if mine then
      local l2 = parse(mine, days)
      if l2 > last then last = l2 end
    end
    local order = {}
    for dd in pairs(days) do table.insert(order, dd) end
    table.sort(order, function(a, b) return a > b end)
    local parts = {}
    for _, dd in ipairs(order) do
      local c, s = days[dd][1], days[dd][2]
      if s == 0 then table.insert(parts, dd .. ':' .. c)
      else table.insert(parts, dd .. ':' .. c .. ':' .. string.format('%.17g', s)) end
      local dayKey = P .. 'ed:' .. name .. ':' .. dd
      redis.call('SETBIT', dayKey, off, 1)
      redis.call('PEXPIRE', dayKey, math.max(1, (dd + window + 1) * 86400000 - now))
    end
    redis.call('HSET', P .. 'e:' .. name, idx, string.format('%d', last) .. '|' .. table.concat(parts, ','))
    if not names then
      names = name
    elseif not string.find(',' .. names .. ',', ',' .. name .. ',', 1, true) then
      names = names .. ',' .. name
    end
  end
  redis.call('HSET', P .. 'en', idx, names)
end
redis.call('SADD', P .. 'mgdone', from)
return 'ok'
