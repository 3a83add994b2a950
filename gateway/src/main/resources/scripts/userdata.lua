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
-- Reads are made up front (HMGET per structure) and writes at the end (HSET/HDEL with many fields,
-- one BITFIELD per bitmap), with the call's own changes seen in between: a first-sight tag change
-- costs a few table operations here, not ten Redis calls.
-- Reply: one value per change: 'ok', 'unknown' (delete or probe of a user without data),
-- 'merged:<user>' (the index was merged into that user: the caller applies the change there),
-- 'too_many_tags' or 'too_many_attributes' (nothing of that change applied).
local P = ARGV[1]
local maxTags = tonumber(ARGV[2])
local maxAttrs = tonumber(ARGV[3])
local SIZE = 2 ^ tonumber(ARGV[4])
local out = {}
local BATCH = 1000

-- reads: the call's indexes' data, tags and merge marks, in one HMGET each per BATCH
local idxs, seen = {}, {}
for i = 5, #ARGV, 4 do
  if not seen[ARGV[i]] then
    seen[ARGV[i]] = true
    table.insert(idxs, ARGV[i])
  end
end
local function readAll(key, list)
  local into = {}
  for from = 1, #list, BATCH do
    local part = {}
    for j = from, math.min(#list, from + BATCH - 1) do table.insert(part, list[j]) end
    local vals = redis.call('HMGET', key, unpack(part))
    for j, idx in ipairs(part) do into[idx] = vals[j] end
  end
  return into
end
local udCur = readAll(KEYS[1], idxs)
local tgCur = readAll(P .. 'tg', idxs)
local fresh = {}
for _, idx in ipairs(idxs) do
  if not udCur[idx] then table.insert(fresh, idx) end
end
local mgCur = readAll(P .. 'mg', fresh)

-- writes, buffered: idx -> decoded data / tags string / user id, or false (deleted); bitmaps
-- key -> offset -> 0|1 (the last write wins, as it would have)
local udNew, tgNew, uiNew = {}, {}, {}
local bits, bitKeys = {}, {}
local function setBit(key, off, v)
  local b = bits[key]
  if not b then
    b = {}
    bits[key] = b
    table.insert(bitKeys, key)
  end
  b[off] = v
end

-- the shard's selection keys, each built once per call: kind ('t:', 'f:', 'b:') .. name
local keyCache = {['t:'] = {}, ['f:'] = {}, ['b:'] = {}}
local function key(kind, name)
  local k = keyCache[kind][name]
  if not k then
    k = P .. kind .. name
    keyCache[kind][name] = k
  end
  return k
end

local function exists(idx)
  if udNew[idx] ~= nil then return udNew[idx] ~= false end
  return udCur[idx] ~= false
end

local function dataOf(idx)
  local d = udNew[idx]
  if type(d) == 'table' then return d end
  return cjson.decode(d or udCur[idx])
end

local function sameAttr(x, y)
  if x == nil or y == nil or x[1] ~= y[1] then return false end
  if x[1] == 'g' then
    return x[2][1] == y[2][1] and x[2][2] == y[2][2] and x[2][3] == y[2][3]
  end
  return x[2] == y[2]
end

local function dropAttr(name, a, idx, off) markAttr(P, name, a, idx, off, false, setBit) end

local function addAttr(name, a, idx, off) markAttr(P, name, a, idx, off, true, setBit) end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

local decoded = {}

local function tagsOf(idx)
  local list = {}
  local cur = tgNew[idx]
  if cur == nil then cur = tgCur[idx] end
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
  -- the bit offset as a string, made once (Lua formats a number each time it passes one)
  local off = string.format('%d', tonumber(idx) % SIZE)
  local known = exists(idx)

  if c.del then
    if not known then
      table.insert(out, 'unknown')
    else
      local d = dataOf(idx)
      for _, tag in ipairs(tagsOf(idx)) do setBit(key('t:', tag), off, 0) end
      for name, a in pairs(d.a) do dropAttr(name, a, idx, off) end
      if d.f then
        for _, flag in ipairs(d.f) do setBit(key('f:', flag), off, 0) end
      end
      local names = redis.call('HGET', P .. 'en', idx)
      if names then
        for name in string.gmatch(names, '[^,]+') do redis.call('HDEL', P .. 'e:' .. name, idx) end
      end
      redis.call('HDEL', P .. 'en', idx)
      setBit(key('b:', d.b), off, 0)
      setBit(KEYS[3], off, 0)
      udNew[idx] = false
      uiNew[idx] = false
      tgNew[idx] = false
      table.insert(out, 'ok')
    end
  elseif not known and c.probe then
    table.insert(out, 'unknown')
  elseif not known and mgCur[idx] then
    -- the index was merged into another user (merge-out.lua): the caller applies the change there
    table.insert(out, 'merged:' .. mgCur[idx])
  else
    -- the new tag set
    local oldTags = nil
    local tags = nil
    if c.t then
      -- a user without data has no tags either (both are written by this script, together)
      if known then oldTags = tagsOf(idx) else oldTags = {} end
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
    if known and (c.a or c.f) then d = dataOf(idx) end
    if not known then d = {a = {}, b = tonumber(bucket)} end
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
      if not known then
        uiNew[idx] = user
        setBit(KEYS[3], off, 1)
        setBit(key('b:', d.b), off, 1)
        -- the flags of a user Herald knows nothing else about (no consent record = consent), at
        -- version 0: any snapshot of the user's hash replaces them
        d.f = {'consent.push', 'consent.sms'}
        d.fv = 0
        setBit(key('f:', 'consent.push'), off, 1)
        setBit(key('f:', 'consent.sms'), off, 1)
      end
      if tags then
        local old = {}
        for _, tag in ipairs(oldTags) do old[tag] = true end
        local new = {}
        for _, tag in ipairs(tags) do
          new[tag] = true
          if not old[tag] then setBit(key('t:', tag), off, 1) end
        end
        local changed = #tags ~= #oldTags
        for tag in pairs(old) do
          if not new[tag] then
            setBit(key('t:', tag), off, 0)
            changed = true
          end
        end
        if changed then
          table.sort(tags)
          tgNew[idx] = table.concat(tags, ',')
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
          if not old[flag] then setBit(key('f:', flag), off, 1) end
        end
        for flag in pairs(old) do
          if not new[flag] then setBit(key('f:', flag), off, 0) end
        end
        d.f = c.f.l
        d.fv = c.f.v
      end
      if not known and not (c.a or c.f) then
        -- the data of a user first seen by a tag change, without encoding it
        udNew[idx] = '{"a":{},"b":' .. bucket .. ',"f":["consent.push","consent.sms"],"fv":0}'
      elseif d then
        udNew[idx] = d
      end
      table.insert(out, 'ok')
    end
  end
end

-- the writes: many fields per HSET/HDEL, many bits per BITFIELD
local function writeAll(key, new)
  local set, del = {}, {}
  for idx, v in pairs(new) do
    if v == false then
      table.insert(del, idx)
    else
      table.insert(set, idx)
      table.insert(set, type(v) == 'table' and cjson.encode(v) or v)
    end
  end
  for from = 1, #set, 2 * BATCH do
    redis.call('HSET', key, unpack(set, from, math.min(#set, from + 2 * BATCH - 1)))
  end
  for from = 1, #del, BATCH do
    redis.call('HDEL', key, unpack(del, from, math.min(#del, from + BATCH - 1)))
  end
end
writeAll(KEYS[1], udNew)
writeAll(P .. 'tg', tgNew)
writeAll(KEYS[2], uiNew)
local VALUE = {[0] = '0', [1] = '1'}
for _, key in ipairs(bitKeys) do
  local ops, n = {}, 0
  for off, v in pairs(bits[key]) do
    ops[n + 1] = 'SET'
    ops[n + 2] = 'u1'
    ops[n + 3] = off
    ops[n + 4] = VALUE[v]
    n = n + 4
    if n >= 4 * BATCH then
      redis.call('BITFIELD', key, unpack(ops, 1, n))
      n = 0
    end
  end
  if n > 0 then redis.call('BITFIELD', key, unpack(ops, 1, n)) end
end
return out
