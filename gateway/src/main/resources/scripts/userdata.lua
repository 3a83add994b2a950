-- Applies changes to users of one index shard: their data (tags, attributes, flags) and every
-- selection structure that reflects them (bitmaps, sorted sets, geo sets), atomically.
-- KEYS[1] the shard's user data (hash: index -> JSON), KEYS[2] its reverse map (index -> user id),
-- KEYS[3] its known-users bitmap. ARGV[1] the prefix of the shard's selection keys (Keys.userBits;
-- the suffixes below are the ones the Keys builders append: tg the hash index -> the user's tags
-- (sorted, comma-joined: a tag-only change reads no JSON), t: tag, a: attribute present,
-- v: name=value, n: numbers and timestamps, g: locations, f: flags, b: sample buckets),
-- ARGV[2] most tags per user, ARGV[3] most attributes per user, ARGV[4] index bits per shard,
-- then four values per change: index, user id, sample bucket (0..99), change JSON:
--   {t = {set = [..]} | {add = [..], rm = [..]}, a = {name = [type, value] | null},
--    f = {v = version, l = [flag names]}, del = true, probe = true}
-- Attribute types: s string, n number, t timestamp (epoch ms), b boolean, g location [lat, lon, at].
-- A delete also drops the user's event records (events.lua; the day bitmaps keep the bit of an
-- index that is never reused, and the known bitmap excludes it from every audience).
-- A user without data is registered first (reverse map, known bit, bucket bit), except by a delete
-- or a probe (a removal addressed to a user never seen: nothing to do).
-- Reply: one value per change: 'ok', 'unknown' (delete or probe of a user without data),
-- 'merged:<user>' (the index was merged into that user: the caller applies the change there),
-- 'too_many_tags' or 'too_many_attributes' (nothing of that change applied).
local P = ARGV[1]
local maxTags = tonumber(ARGV[2])
local maxAttrs = tonumber(ARGV[3])
local SIZE = 2 ^ tonumber(ARGV[4])
local out = {}

local function sameAttr(x, y)
  if x == nil or y == nil or x[1] ~= y[1] then return false end
  if x[1] == 'g' then
    return x[2][1] == y[2][1] and x[2][2] == y[2][2] and x[2][3] == y[2][3]
  end
  return x[2] == y[2]
end

local function dropAttr(name, a, idx, off) markAttr(P, name, a, idx, off, false) end

local function addAttr(name, a, idx, off) markAttr(P, name, a, idx, off, true) end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

local decoded = {}

local function tagsOf(idx)
  local list = {}
  local cur = redis.call('HGET', P .. 'tg', idx)
  if cur and cur ~= '' then
    for tag in string.gmatch(cur, '[^,]+') do table.insert(list, tag) end
  end
  return list
end

for i = 5, #ARGV, 4 do
  local idx = ARGV[i]
  local user = ARGV[i + 1]
  local bucket = ARGV[i + 2]
  -- a bulk call gives many users the same change: decode each distinct one once
  local c = decoded[ARGV[i + 3]]
  if not c then
    c = cjson.decode(ARGV[i + 3])
    decoded[ARGV[i + 3]] = c
  end
  local off = tonumber(idx) % SIZE
  local raw = redis.call('HGET', KEYS[1], idx)

  if c.del then
    if not raw then
      table.insert(out, 'unknown')
    else
      local d = cjson.decode(raw)
      for _, tag in ipairs(tagsOf(idx)) do redis.call('SETBIT', P .. 't:' .. tag, off, 0) end
      for name, a in pairs(d.a) do dropAttr(name, a, idx, off) end
      if d.f then
        for _, flag in ipairs(d.f) do redis.call('SETBIT', P .. 'f:' .. flag, off, 0) end
      end
      local names = redis.call('HGET', P .. 'en', idx)
      if names then
        for name in string.gmatch(names, '[^,]+') do redis.call('HDEL', P .. 'e:' .. name, idx) end
      end
      redis.call('HDEL', P .. 'en', idx)
      redis.call('SETBIT', P .. 'b:' .. d.b, off, 0)
      redis.call('SETBIT', KEYS[3], off, 0)
      redis.call('HDEL', KEYS[1], idx)
      redis.call('HDEL', KEYS[2], idx)
      redis.call('HDEL', P .. 'tg', idx)
      table.insert(out, 'ok')
    end
  elseif not raw and c.probe then
    table.insert(out, 'unknown')
  elseif not raw and redis.call('HEXISTS', P .. 'mg', idx) == 1 then
    -- the index was merged into another user (merge-out.lua): the caller applies the change there
    table.insert(out, 'merged:' .. redis.call('HGET', P .. 'mg', idx))
  else
    -- the new tag set
    local oldTags = nil
    local tags = nil
    if c.t then
      -- a user without data has no tags either (both are written by this script, together)
      if raw then oldTags = tagsOf(idx) else oldTags = {} end
      local set = {}
      if c.t.set then
        for _, tag in ipairs(c.t.set) do set[tag] = true end
      else
        for _, tag in ipairs(oldTags) do set[tag] = true end
        if c.t.rm then for _, tag in ipairs(c.t.rm) do set[tag] = nil end end
        if c.t.add then for _, tag in ipairs(c.t.add) do set[tag] = true end end
      end
      tags = {}
      for tag in pairs(set) do table.insert(tags, tag) end
    end
    -- the data (JSON) only when more than tags change
    local d = nil
    if raw and (c.a or c.f) then d = cjson.decode(raw) end
    if not raw then d = {u = user, a = {}, b = tonumber(bucket)} end
    local attrs = nil
    if c.a then
      attrs = {}
      for name, a in pairs(d.a) do attrs[name] = a end
      for name, a in pairs(c.a) do
        if a == cjson.null then attrs[name] = nil else attrs[name] = a end
      end
    end
    if tags and #tags > maxTags then
      table.insert(out, 'too_many_tags')
    elseif attrs and count(attrs) > maxAttrs then
      table.insert(out, 'too_many_attributes')
    else
      if not raw then
        redis.call('HSET', KEYS[2], idx, user)
        redis.call('SETBIT', KEYS[3], off, 1)
        redis.call('SETBIT', P .. 'b:' .. d.b, off, 1)
        -- the flags of a user Herald knows nothing else about (no consent record = consent), at
        -- version 0: any snapshot of the user's hash replaces them
        d.f = {'consent.push', 'consent.sms'}
        d.fv = 0
        redis.call('SETBIT', P .. 'f:consent.push', off, 1)
        redis.call('SETBIT', P .. 'f:consent.sms', off, 1)
      end
      if tags then
        local old = {}
        for _, tag in ipairs(oldTags) do old[tag] = true end
        local new = {}
        for _, tag in ipairs(tags) do
          new[tag] = true
          if not old[tag] then redis.call('SETBIT', P .. 't:' .. tag, off, 1) end
        end
        local changed = #tags ~= #oldTags
        for tag in pairs(old) do
          if not new[tag] then
            redis.call('SETBIT', P .. 't:' .. tag, off, 0)
            changed = true
          end
        end
        if changed then
          table.sort(tags)
          redis.call('HSET', P .. 'tg', idx, table.concat(tags, ','))
        end
      end
      if attrs then
        for name, a in pairs(d.a) do
          if not sameAttr(a, attrs[name]) then dropAttr(name, a, idx, off) end
        end
        for name, a in pairs(attrs) do
          if not sameAttr(a, d.a[name]) then addAttr(name, a, idx, off) end
        end
        d.a = attrs
      end
      -- flags: a full snapshot, applied only when newer than the one applied (calls may race)
      if c.f and (d.fv == nil or c.f.v > d.fv) then
        local old = {}
        if d.f then for _, flag in ipairs(d.f) do old[flag] = true end end
        local new = {}
        for _, flag in ipairs(c.f.l) do
          new[flag] = true
          if not old[flag] then redis.call('SETBIT', P .. 'f:' .. flag, off, 1) end
        end
        for flag in pairs(old) do
          if not new[flag] then redis.call('SETBIT', P .. 'f:' .. flag, off, 0) end
        end
        d.f = c.f.l
        d.fv = c.f.v
      end
      if d then redis.call('HSET', KEYS[1], idx, cjson.encode(d)) end
      table.insert(out, 'ok')
    end
  end
end
return out
