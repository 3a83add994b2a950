-- Starts and cancels trigger instances of one app's users of one shard, in one call (one slot:
-- {s.<n>}, the shard of app:user, which also holds the shard's timers).
-- KEYS[1] the shard's timers (zset: app US user US rule US corr -> due ms), KEYS[2] the app's counters
--   of the shard (hash: rule|counter -> n), KEYS[3..] the users' instance hashes (Keys.triggerInstances).
-- ARGV[1] now (ms), ARGV[2] how long an ended instance is kept (ms), ARGV[3] the app, then one
--   operation per 12 arguments:
--   'A' key index, user, rule, corr, at (event time), due, within (ms), entry count (0: no limit),
--       entry per (ms), event id ('' none), item (the message's JSON)
--   'B' key index, user, rule, corr, at (event time), keep (ms: the rule's window), then 5 unused
-- An instance is field 'i|rule|corr' = state US startedAt US due US at US eventId US messageId US
--   endedAt US reason, and while pending US item (the message JSON) (state p pending, c cancelled,
--   f fired, s suppressed); 'b|rule|corr' = at US keepUntil of the latest cancelling event (for an
--   A that arrives after its B).
-- Reply: one code per operation: A -> started | duplicate | cancelled | limited; B -> cancelled | none.
local US = '\31'
local now = tonumber(ARGV[1])
local keep = tonumber(ARGV[2])
local app = ARGV[3]
local counts = {}
local function count(rule, what)
  local f = rule .. '|' .. what
  counts[f] = (counts[f] or 0) + 1
end
local function split(v)
  local out = {}
  for part in string.gmatch(v .. US, '([^' .. US .. ']*)' .. US) do
    out[#out + 1] = part
  end
  return out
end
local function join(t)
  return table.concat(t, US)
end
local seen = {}
local function prepare(key)
  if seen[key] then return end
  seen[key] = true
  if redis.call('HLEN', key) <= 32 then return end
  local all = redis.call('HGETALL', key)
  local gone = {}
  for i = 1, #all, 2 do
    local f, v = all[i], all[i + 1]
    local kind = string.sub(f, 1, 1)
    if kind == 'i' then
      local s = split(v)
      if s[1] ~= 'p' and tonumber(s[7]) and tonumber(s[7]) + keep < now then gone[#gone + 1] = f end
    elseif kind == 'b' then
      local s = split(v)
      if tonumber(s[2]) < now then gone[#gone + 1] = f end
    end
  end
  if #gone > 0 then redis.call('HDEL', key, unpack(gone)) end
end
local function extend(key, ms)
  local ttl = redis.call('PTTL', key)
  if ttl < ms then redis.call('PEXPIRE', key, ms) end
end
local out = {}
for i = 4, #ARGV, 12 do
  local op, key = ARGV[i], KEYS[tonumber(ARGV[i + 1])]
  local user, rule, corr, at = ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], tonumber(ARGV[i + 5])
  prepare(key)
  local f = 'i|' .. rule .. '|' .. corr
  if op == 'A' then
    local due, within, limit, per, eid, item = tonumber(ARGV[i + 6]), tonumber(ARGV[i + 7]), tonumber(ARGV[i + 8]),
      tonumber(ARGV[i + 9]), ARGV[i + 10], ARGV[i + 11]
    local code
    if redis.call('HEXISTS', key, f) == 1 then
      code = 'duplicate'
    else
      local b = redis.call('HGET', key, 'b|' .. rule .. '|' .. corr)
      if b and within > 0 and tonumber(split(b)[1]) <= at + within then
        redis.call('HSET', key, f, join({'c', now, due, at, eid, '', now, 'unless_seen'}))
        count(rule, 'started')
        code = 'cancelled'
      else
        if limit > 0 then
          local n = 0
          local all = redis.call('HGETALL', key)
          local prefix = 'i|' .. rule .. '|'
          for j = 1, #all, 2 do
            if string.sub(all[j], 1, #prefix) == prefix and tonumber(split(all[j + 1])[2]) >= now - per then
              n = n + 1
            end
          end
          if n >= limit then code = 'limited' end
        end
        if not code then
          local fire = math.max(due, now)
          redis.call('HSET', key, f, join({'p', now, due, at, eid, '', '', '', item}))
          redis.call('ZADD', KEYS[1], fire, app .. US .. user .. US .. rule .. US .. corr)
          extend(key, fire - now + keep)
          code = 'started'
        end
      end
    end
    count(rule, code)
    out[#out + 1] = code
  else
    local within = tonumber(ARGV[i + 6])
    local bf = 'b|' .. rule .. '|' .. corr
    local prev = redis.call('HGET', key, bf)
    if not prev or tonumber(split(prev)[1]) < at then
      redis.call('HSET', key, bf, join({at, now + within}))
    end
    extend(key, within + keep)
    local v = redis.call('HGET', key, f)
    local code = 'none'
    if v then
      local s = split(v)
      if s[1] == 'p' and at <= tonumber(s[4]) + within then
        s[1] = 'c'
        s[7] = now
        s[8] = 'unless'
        s[9] = nil
        redis.call('HSET', key, f, join(s))
        redis.call('ZREM', KEYS[1], app .. US .. user .. US .. rule .. US .. corr)
        code = 'cancelled'
        count(rule, 'cancelled')
      end
    end
    out[#out + 1] = code
  end
end
for f, n in pairs(counts) do
  redis.call('HINCRBY', KEYS[2], f, n)
end
return out
