-- Records behavioural events of users of one index shard.
-- KEYS[1] the shard's user data (hash: index -> JSON), KEYS[2] its reverse map, KEYS[3] its
-- known-users bitmap. ARGV[1] the prefix of the shard's selection keys (Keys.userBits; suffixes:
-- ed:<name>:<day> a bitmap of the users with that event on that UTC day, expiring after the window;
-- e:<name> a hash index -> 'last|day:count:sum,...' for the days inside the window;
-- id:<index>:<id> an event id already recorded, kept for the window; b:<bucket> as userdata.lua),
-- ARGV[2] index bits per shard, ARGV[3] now (epoch ms, Herald's clock: expiries are relative to it,
-- so they hold whatever Redis's own clock says), ARGV[4] window days, then eight
-- values per event: index, user id, sample bucket, name, day, at (epoch ms), amount ('' none),
-- event id ('' none).
-- Reply: one value per event: 'ok' or 'duplicate' (its id was recorded before).
local P = ARGV[1]
local SIZE = 2 ^ tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local today = math.floor(now / 86400000)
local window = tonumber(ARGV[4])
local out = {}

for i = 5, #ARGV, 8 do
  local idx, user, bucket, name = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local day, at, amount, id = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5]), ARGV[i + 6], ARGV[i + 7]
  local off = tonumber(idx) % SIZE
  local fresh = true
  if id ~= '' then
    fresh = redis.call('SET', P .. 'id:' .. idx .. ':' .. id, '1', 'NX', 'PX',
        math.max(1, (day + window + 1) * 86400000 - now)) ~= false
  end
  if not fresh then
    table.insert(out, 'duplicate')
  else
    -- the user: registered at first sight (as userdata.lua does), event names listed in its data
    local raw = redis.call('HGET', KEYS[1], idx)
    local d
    if raw then
      d = cjson.decode(raw)
    else
      d = {u = user, a = {}, b = tonumber(bucket)}
      redis.call('HSET', KEYS[2], idx, user)
      redis.call('SETBIT', KEYS[3], off, 1)
      redis.call('SETBIT', P .. 'b:' .. bucket, off, 1)
    end
    local names = d.e or {}
    local listed = false
    for _, n in ipairs(names) do if n == name then listed = true end end
    if not listed or not raw then
      if not listed then table.insert(names, name) end
      d.e = names
      redis.call('HSET', KEYS[1], idx, cjson.encode(d))
    end
    -- the day's bitmap
    local dayKey = P .. 'ed:' .. name .. ':' .. day
    redis.call('SETBIT', dayKey, off, 1)
    redis.call('PEXPIRE', dayKey, math.max(1, (day + window + 1) * 86400000 - now))
    -- the user's per-day counts and sums inside the window, and the last time
    local rec = redis.call('HGET', P .. 'e:' .. name, idx)
    local last = at
    local days = {}
    if rec then
      local l, rest = string.match(rec, '^([^|]*)|(.*)$')
      if tonumber(l) > last then last = tonumber(l) end
      for dd, c, s in string.gmatch(rest, '(%d+):(%d+):([^,]*)') do
        dd = tonumber(dd)
        if dd > today - window then days[dd] = {tonumber(c), tonumber(s) or 0} end
      end
    end
    local cur = days[day] or {0, 0}
    cur[1] = cur[1] + 1
    if amount ~= '' then cur[2] = cur[2] + tonumber(amount) end
    days[day] = cur
    local parts = {}
    for dd, v in pairs(days) do
      table.insert(parts, dd .. ':' .. v[1] .. ':' .. string.format('%.17g', v[2]))
    end
    redis.call('HSET', P .. 'e:' .. name, idx, string.format('%d', last) .. '|' .. table.concat(parts, ','))
    table.insert(out, 'ok')
  end
end
return out
