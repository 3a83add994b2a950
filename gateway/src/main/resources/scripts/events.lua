-- Records behavioural events of users of one index shard.
-- KEYS[1] the shard's user data (hash: index -> JSON), KEYS[2] its reverse map, KEYS[3] its
-- known-users bitmap. ARGV[1] the prefix of the shard's selection keys (Keys.userBits; suffixes:
-- ed:<name>:<day> a bitmap of the users with that event on that UTC day, expiring after the window;
-- e:<name> a hash index -> 'last|day:count[:sum],...' for the days inside the window, newest first;
-- en a hash index -> the event names the user has (comma-joined); id:<index>:<id> an event id
-- already recorded, kept for the window; b:<bucket> as userdata.lua),
-- ARGV[2] index bits per shard, ARGV[3] now (epoch ms, Herald's clock: expiries are relative to it,
-- so they hold whatever Redis's own clock says), ARGV[4] window days, then eight
-- values per event: index, user id, sample bucket, name, day, at (epoch ms), amount ('' none),
-- event id ('' none).
-- Reply: one value per event: 'ok', 'duplicate' (its id was recorded before) or 'merged:<user>'
-- (the index was merged into that user: the caller records the event there).
local P = ARGV[1]
local SIZE = 2 ^ tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local today = math.floor(now / 86400000)
local window = tonumber(ARGV[4])
local out = {}

local function entry(d, c, s)
  if s == 0 then return d .. ':' .. c end
  return d .. ':' .. c .. ':' .. string.format('%.17g', s)
end

for i = 5, #ARGV, 8 do
  local idx, user, bucket, name = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local day, at, amount, id = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5]), ARGV[i + 6], ARGV[i + 7]
  local off = tonumber(idx) % SIZE
  local fresh = true
  if id ~= '' then
    fresh = redis.call('SET', P .. 'id:' .. idx .. ':' .. id, '1', 'NX', 'PX',
        math.max(1, (day + window + 1) * 86400000 - now)) ~= false
  end
  local merged = false
  if redis.call('HEXISTS', KEYS[2], idx) == 0 then
    merged = redis.call('HGET', P .. 'mg', idx)
  end
  if merged then
    -- the index was merged into another user (merge-out.lua): the caller sends it there
    if id ~= '' then redis.call('DEL', P .. 'id:' .. idx .. ':' .. id) end
    table.insert(out, 'merged:' .. merged)
  elseif not fresh then
    table.insert(out, 'duplicate')
  else
    -- the user: registered at first sight (as userdata.lua does); the event names it has used
    -- in en (comma-joined), so a delete finds its records
    if redis.call('HEXISTS', KEYS[2], idx) == 0 then
      -- default flags at version 0, as userdata.lua gives a user it registers
      redis.call('HSET', KEYS[1], idx, cjson.encode({a = {}, b = tonumber(bucket),
          f = {'consent.push', 'consent.sms'}, fv = 0}))
      redis.call('HSET', KEYS[2], idx, user)
      redis.call('SETBIT', KEYS[3], off, 1)
      redis.call('SETBIT', P .. 'b:' .. bucket, off, 1)
      redis.call('SETBIT', P .. 'f:consent.push', off, 1)
      redis.call('SETBIT', P .. 'f:consent.sms', off, 1)
    end
    local names = redis.call('HGET', P .. 'en', idx)
    if not names then
      redis.call('HSET', P .. 'en', idx, name)
    elseif not string.find(',' .. names .. ',', ',' .. name .. ',', 1, true) then
      redis.call('HSET', P .. 'en', idx, names .. ',' .. name)
    end
    -- the day's bitmap
    local dayKey = P .. 'ed:' .. name .. ':' .. day
    redis.call('SETBIT', dayKey, off, 1)
    redis.call('PEXPIRE', dayKey, math.max(1, (day + window + 1) * 86400000 - now))
    -- the user's per-day counts and sums inside the window, newest day first, and the last time:
    -- 'last|day:count[:sum],...'. An event of the newest day (or a newer one) only rewrites the
    -- head; an older day, or a day leaving the window, rebuilds the list.
    local key = P .. 'e:' .. name
    local rec = redis.call('HGET', key, idx)
    local last = at
    local rest = ''
    if rec then
      local l
      l, rest = string.match(rec, '^([^|]*)|(.*)$')
      if tonumber(l) > last then last = tonumber(l) end
    end
    local add = 0
    if amount ~= '' then add = tonumber(amount) end
    local oldest = tonumber(string.match(rest, '(%d+):[^,]*$') or day)
    local fd, fc, fs, tail = string.match(rest, '^(%d+):(%d+):?([^,]*),?(.*)$')
    if fd and tonumber(fd) == day and oldest > today - window then
      rest = entry(day, tonumber(fc) + 1, (tonumber(fs) or 0) + add) .. (tail ~= '' and (',' .. tail) or '')
    elseif (not fd or tonumber(fd) < day) and oldest > today - window then
      rest = entry(day, 1, add) .. (rest ~= '' and (',' .. rest) or '')
    else
      local days = {}
      for dd, c, s in string.gmatch(rest, '(%d+):(%d+):?([^,]*)') do
        dd = tonumber(dd)
        if dd > today - window then days[dd] = {tonumber(c), tonumber(s) or 0} end
      end
      local cur = days[day] or {0, 0}
      days[day] = {cur[1] + 1, cur[2] + add}
      local order = {}
      for dd in pairs(days) do table.insert(order, dd) end
      table.sort(order, function(a, b) return a > b end)
      local parts = {}
      for _, dd in ipairs(order) do table.insert(parts, entry(dd, days[dd][1], days[dd][2])) end
      rest = table.concat(parts, ',')
    end
    redis.call('HSET', key, idx, string.format('%d', last) .. '|' .. rest)
    table.insert(out, 'ok')
  end
end
return out
