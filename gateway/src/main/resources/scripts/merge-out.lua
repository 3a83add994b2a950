-- Retires a user merged into another, in the retired user's index shard: takes a snapshot of
-- their tags, attributes and event records, clears them and every selection bit as a delete
-- does, and marks the index as merged (mg: index -> target user) so that a write still in flight
-- to it is redirected rather than registering it again. The snapshot is kept (mgd) until the
-- target has taken it, so a retried merge finds it.
-- KEYS[1] the shard's user data, KEYS[2] its reverse map, KEYS[3] its known-users bitmap.
-- ARGV[1] the prefix of the shard's selection keys, ARGV[2] index bits per shard, ARGV[3] the
-- index, ARGV[4] the target user. Reply: the snapshot JSON {t = [tags], a = {attributes},
-- e = {name = record}}, or false when the index has no data and no kept snapshot.
local P = ARGV[1]
local SIZE = 2 ^ tonumber(ARGV[2])
local idx = ARGV[3]
local off = tonumber(idx) % SIZE
local kept = redis.call('HGET', P .. 'mgd', idx)
if kept then return kept end
local raw = redis.call('HGET', KEYS[1], idx)
if not raw then return false end
local d = cjson.decode(raw)
local snap = {t = {}, a = d.a, e = {}}
local tags = redis.call('HGET', P .. 'tg', idx)
if tags and tags ~= '' then
  for tag in string.gmatch(tags, '[^,]+') do
    table.insert(snap.t, tag)
    redis.call('SETBIT', P .. 't:' .. tag, off, 0)
  end
end
for name, a in pairs(d.a) do markAttr(P, name, a, idx, off, false) end
if d.f then
  for _, flag in ipairs(d.f) do redis.call('SETBIT', P .. 'f:' .. flag, off, 0) end
end
local names = redis.call('HGET', P .. 'en', idx)
if names then
  for name in string.gmatch(names, '[^,]+') do
    local rec = redis.call('HGET', P .. 'e:' .. name, idx)
    if rec then snap.e[name] = rec end
    redis.call('HDEL', P .. 'e:' .. name, idx)
  end
end
if next(snap.e) == nil then snap.e = nil end
redis.call('SETBIT', P .. 'b:' .. d.b, off, 0)
redis.call('SETBIT', KEYS[3], off, 0)
redis.call('HDEL', KEYS[1], idx)
redis.call('HDEL', KEYS[2], idx)
redis.call('HDEL', P .. 'tg', idx)
redis.call('HDEL', P .. 'en', idx)
redis.call('HSET', P .. 'mg', idx, ARGV[4])
local out = cjson.encode(snap)
redis.call('HSET', P .. 'mgd', idx, out)
return out
