-- Admission of many messages in one call (one call per ring-handler batch and slot group): the
-- frequency caps with priority claims, then the per-user rate limit (GCRA).
-- KEYS, three per check i: the user's rate-limit key (Keys.rateLimit), cap log (Keys.capLog: member
--   messageId|channel|category, score = send time) and claims (Keys.capClaims: member
--   messageId|priority|category, score = due time); then this call's request key
--   (Keys.rateLimitRequest): the verdicts are kept there for ARGV[1] ms, and a call with the same
--   request key returns them without touching anything, so a retried call consumes nothing twice.
-- ARGV[1] remember ms, ARGV[2] now (ms, the gateway's clock), ARGV[3] cap-log entries older than
--   this are trimmed, ARGV[4] ms the cap log and claims are kept after a change.
-- Then per check: mode, interval ms, burst tolerance ms, deadline, cap-log member, claim member,
--   priority, due, onCap ('defer' or 'drop'), rule count R, then R rules of seven values: id,
--   window start, window end (ms), limit, scope kind ('all', 'channel', 'category'), scope value,
--   rolling length (ms; 0 for a calendar window). A rolling window is given as [now - length,
--   now + length): sends already reserved for later count, and so do claims due before the send
--   would age out.
--   mode 'g': the rate limit only (transactional); 'c': caps, then the rate limit (marketing: the
--   rules given are those whose scope is the message's); 'h': only register the claim (member,
--   priority, due) of a message held until due (quiet hours, a send time).
-- Reply, one string per check: 'n' send now; 'd:<ms>' deferred to the reserved rate-limit slot;
--   'r' dropped, the slot is past the deadline; 'c:<rule>' capped; 'p:<rule>' capped because a
--   higher-priority claim is due in the window; 'w:<ms>:<rule>' capped, waiting (onCap defer)
--   until the window reopens, its claim registered; 'h' claim registered.
-- A message that passes reserves its place in the cap log (score = its send time); the record
-- stage removes it if the message ends without being accepted (release.lua).
local n = (#KEYS - 1) / 3
local request = KEYS[#KEYS]
local done = redis.call('GET', request)
if done then
  local out = {}
  for v in string.gmatch(done, '[^,]+') do out[#out + 1] = v end
  return out
end
local now = tonumber(ARGV[2])
local trimBefore = tonumber(ARGV[3])
local keep = tonumber(ARGV[4])
local out = {}
local a = 5

local function split(s)
  local f = {}
  for part in string.gmatch(s .. '|', '([^|]*)|') do f[#f + 1] = part end
  return f
end

local function matches(kind, value, channel, category)
  if kind == 'all' then return true end
  if kind == 'channel' then
    return channel == value or (value == 'push' and (channel == 'apns' or channel == 'fcm'))
  end
  return category == value
end

local function gcra(key, interval, tolerance, deadline)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local newTat = tat + interval
  local allowAt = newTat - tolerance
  if allowAt <= now then
    return 0, newTat
  elseif allowAt <= deadline then
    return math.ceil(allowAt), newTat
  end
  return -1, newTat
end

for i = 1, n do
  local rl, log, claims = KEYS[i * 3 - 2], KEYS[i * 3 - 1], KEYS[i * 3]
  local mode = ARGV[a]
  local interval, tolerance, deadline = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local member, claim = ARGV[a + 4], ARGV[a + 5]
  local rank, due, onCap = tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7]), ARGV[a + 8]
  local r = tonumber(ARGV[a + 9])
  local rules = {}
  for j = 1, r do
    local b = a + 10 + (j - 1) * 7
    rules[j] = {id = ARGV[b], from = tonumber(ARGV[b + 1]), to = tonumber(ARGV[b + 2]), limit = tonumber(ARGV[b + 3]),
                kind = ARGV[b + 4], value = ARGV[b + 5], len = tonumber(ARGV[b + 6])}
  end
  a = a + 10 + r * 7
  local verdict
  if mode == 'h' then
    redis.call('ZADD', claims, due, claim)
    redis.call('PEXPIRE', claims, keep)
    verdict = 'h'
  else
    local capped = nil
    if mode == 'c' then
      -- its own claim (held until now) no longer stands in its way
      redis.call('ZREM', claims, claim)
      if r > 0 then
        redis.call('ZREMRANGEBYSCORE', log, '-inf', '(' .. trimBefore)
        local mine = split(member)
        local from, to = rules[1].from, rules[1].to
        for _, rule in ipairs(rules) do
          if rule.from < from then from = rule.from end
          if rule.to > to then to = rule.to end
        end
        local sent = redis.call('ZRANGEBYSCORE', log, from, '+inf', 'WITHSCORES')
        -- claims due in the window, and those a little overdue (being promoted)
        local pending = redis.call('ZRANGEBYSCORE', claims, now - 300000, '(' .. to, 'WITHSCORES')
        for _, rule in ipairs(rules) do
          local times = {}
          for k = 1, #sent, 2 do
            local s = tonumber(sent[k + 1])
            if s >= rule.from and s < rule.to then
              local f = split(sent[k])
              if matches(rule.kind, rule.value, f[2], f[3]) then times[#times + 1] = s end
            end
          end
          local higher, lastDue = 0, 0
          for k = 1, #pending, 2 do
            local d = tonumber(pending[k + 1])
            local f = split(pending[k])
            if d < rule.to and tonumber(f[2]) > rank and f[1] ~= mine[1]
                and (rule.kind ~= 'category' or f[3] == rule.value) then
              higher = higher + 1
              if d > lastDue then lastDue = d end
            end
          end
          local used = #times
          if used >= rule.limit or used + higher >= rule.limit then
            local code = used >= rule.limit and 'c' or 'p'
            -- when it could go: behind a claim, just after the claim is due; a calendar window at
            -- its end; a rolling one when enough sends have aged out of it
            local reopen = rule.to
            if code == 'p' then
              reopen = lastDue + 1000
            elseif rule.len > 0 then
              table.sort(times)
              reopen = times[used - rule.limit + 1] + rule.len
            end
            capped = {code = code, rule = rule.id, reopen = reopen}
            break
          end
        end
      end
    end
    if capped then
      if onCap == 'defer' and capped.reopen <= deadline then
        redis.call('ZADD', claims, capped.reopen, claim)
        redis.call('PEXPIRE', claims, keep)
        verdict = 'w:' .. string.format('%d', capped.reopen) .. ':' .. capped.rule
      else
        verdict = capped.code .. ':' .. capped.rule
      end
    else
      local at, newTat = gcra(rl, interval, tolerance, deadline)
      if at < 0 then
        verdict = 'r'
      else
        redis.call('SET', rl, string.format('%.3f', newTat), 'PX', math.ceil(newTat - now) + 1000)
        if mode == 'c' then
          redis.call('ZADD', log, at == 0 and now or at, member)
          redis.call('PEXPIRE', log, keep)
        end
        verdict = at == 0 and 'n' or ('d:' .. string.format('%d', at))
      end
    end
  end
  out[i] = verdict
end
redis.call('SET', request, table.concat(out, ','), 'PX', ARGV[1])
return out
