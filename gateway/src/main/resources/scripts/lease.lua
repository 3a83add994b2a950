-- The nodes' leases (Keys.leases: node id -> holder US expires-at ms), on Redis's clock so that the
-- nodes' clocks never matter. One slot ({nodes}); a few calls per node per lease period.
-- KEYS[1] the leases hash. ARGV[1] the operation, ARGV[2] node id, ARGV[3] holder (an instance),
-- ARGV[4] lease time (ms), ARGV[5] the deployment's shard count (acquire).
--   acquire: takes the node's lease when nobody holds it, it has expired, or the holder is us.
--            Reply {1, holder, expires-at} taken; {0, holder, ms left} held by another;
--            {-1, shards} the deployment uses another shard count (field '@shards', set by the first node).
--   replace: as acquire, and also takes it from holder ARGV[6] (a crashed run of this node on this
--            host, known dead: its process is gone).
--   reclaim: takes the node's own lease back, whoever holds it (the node itself, alive after a
--            pause longer than the lease: the node that took it over stops renewing it).
--   renew:   extends it while we hold it. Reply {1, ...} or {0, holder, ms left} (lost).
--   release: lets it go if we hold it: it stays as expired, so another node takes the journal over
--            (whatever is left in it). Reply {1}.
--   drop:    removes the node if we hold its lease (its journal is empty: nothing to take over). Reply {1}.
--   expired: Reply {node ids whose lease has expired}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op, h = ARGV[1], KEYS[1]
if op == 'expired' then
  local all = redis.call('HGETALL', h)
  local out = {}
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 1) ~= '@' then
      local exp = tonumber(string.match(all[i + 1], '\31(%d+)$') or '0')
      if exp <= now then out[#out + 1] = all[i] end
    end
  end
  return out
end
local node, me, ttl = ARGV[2], ARGV[3], tonumber(ARGV[4])
local cur = redis.call('HGET', h, node)
local holder, exp = nil, 0
if cur then
  holder, exp = string.match(cur, '^(.*)\31(%d+)$')
  exp = tonumber(exp or '0')
end
if op == 'release' then
  if holder == me then redis.call('HSET', h, node, '\31' .. '0') end
  return {1}
end
if op == 'drop' then
  if holder == me then redis.call('HDEL', h, node) end
  return {1}
end
if op == 'acquire' or op == 'replace' then
  local shards = redis.call('HGET', h, '@shards')
  if shards and shards ~= ARGV[5] then return {-1, shards} end
  if not shards then redis.call('HSET', h, '@shards', ARGV[5]) end
  local dead = op == 'replace' and holder == ARGV[6]
  if holder ~= nil and holder ~= me and exp > now and not dead then return {0, holder, exp - now} end
elseif op ~= 'reclaim' and holder ~= me then
  return {0, holder or '', 0}
end
redis.call('HSET', h, node, me .. '\31' .. (now + ttl))
return {1, me, now + ttl}
