-- Admission of many messages in one call (one call per ring-handler batch and slot group): the
-- frequency caps with priority claims, then the per-user rate limit (GCRA).
-- One key per user (Keys.admission, a sorted set) holds all of it:
--   't'  the GCRA theoretical arrival time (score, ms);
--   'x'  when the key expires (score: now + the PEXPIRE set last; moved on only when needed);
--   's|<messageId>|<channel>|<category>'  a marketing send, scored by its send time;
--   'c|<messageId>|<priority>|<category>' the claim of a held marketing message, scored by when due.
-- So a marketing message costs one read (ZRANGE) and one write (ZADD), as the rate limit alone did
-- (GET, SET) before the delivery policy.
-- KEYS: per check its user's key; then this call's request key (Keys.rateLimitRequest): the
--   verdicts are kept there for ARGV[1] ms, and a call with the same request key returns them
--   without touching anything (a retried call consumes nothing twice).
-- ARGV[1] remember ms, ARGV[2] now (ms, the gateway's clock), ARGV[3] sends and claims older than
--   this are trimmed, ARGV[4] ms a key with sends or claims lives after the last one is added;
--   then the rule table: R, and R rules of five values: id, limit, scope kind ('all', 'channel',
--   'category'), scope value, rolling length ms (0: a calendar window);
--   then the window groups (one per app and zone): G, and per group: first rule, rule count, and
--   per rule its window start and end (ms). A rolling window is [now - length, now + length):
--   sends already reserved for later count, and so do claims due before this send ages out;
--   then per check, by mode:
--   'g' (the rate limit only): interval ms, burst tolerance ms, deadline;
--   'c' (caps, then the rate limit): interval, tolerance, deadline, message id, channel, category,
--       priority, onCap ('defer'|'drop'), held ('1': remove its own claim first), window group, and
--       which of the group's rules apply ('1'/'0' per rule);
--   'h' (register the claim of a message held until due): message id, priority, category, due.
-- Reply, one string per check: 'n' send now; 'd:<ms>' deferred to the reserved rate-limit slot;
--   'r' dropped, the slot is past the deadline; 'c:<rule>' capped; 'p:<rule>' capped because a
--   higher-priority claim is due in the window; 'w:<ms>:<rule>' capped, waiting (onCap defer) until
--   the window reopens, its claim registered; 'h' claim registered.
-- A message that passes reserves its place (score = its send time); the record stage removes it if
-- the message ends without being accepted (release.lua).
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
-- a: the next argument to read
local a = 5
local rules = {}
local r = tonumber(ARGV[a])
a = a + 1
for j = 1, r do
  rules[j] = {id = ARGV[a], limit = tonumber(ARGV[a + 1]), kind = ARGV[a + 2], value = ARGV[a + 3],
              len = tonumber(ARGV[a + 4])}
  a = a + 5
end
local groups = {}
local g = tonumber(ARGV[a])
a = a + 1
for gi = 1, g do
  local first, count = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local w = {first = first, count = count}
  for j = 0, count - 1 do
    w[first + j] = {tonumber(ARGV[a + 2 + j * 2]), tonumber(ARGV[a + 3 + j * 2])}
  end
  groups[gi] = w
  a = a + 2 + count * 2
end

local function matches(kind, value, channel, category)
  if kind == 'all' then return true end
  if kind == 'channel' then
    return channel == value or (value == 'push' and (channel == 'apns' or channel == 'fcm'))
  end
  return category == value
end

-- GCRA from the TAT read (nil: none): 0 now, the slot (ms), or -1 past the deadline; the new TAT
local function gcra(tat, interval, tolerance, deadline)
  tat = tat or now
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

-- One ZADD of the members (score, member pairs in z), keeping the key alive until at least
-- liveUntil: when its expiry (the 'x' read: expires) is earlier, 'x' and the PEXPIRE move on to
-- liveUntil plus slack (half of ARGV[4] for a key with sends, a minute for the TAT alone).
local function write(key, z, expires, liveUntil, slack)
  if (expires or 0) < liveUntil then
    local at = string.format('%d', math.ceil(liveUntil + slack))
    z[#z + 1] = at
    z[#z + 1] = 'x'
    redis.call('ZADD', key, unpack(z))
    -- relative: the gateway's clock need not be Redis's (tests move it)
    redis.call('PEXPIRE', key, string.format('%d', math.ceil(liveUntil + slack - now)))
  else
    redis.call('ZADD', key, unpack(z))
  end
end

local function fmt(ms)
  return string.format('%d', ms)
end

local out = {}
local n = 0
local k = 0
while a <= #ARGV do
  local mode = ARGV[a]
  local verdict
  k = k + 1
  local key = KEYS[k]
  if mode == 'g' then
    local v = redis.call('ZMSCORE', key, 't', 'x')
    local at, newTat = gcra(tonumber(v[1]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]))
    if at < 0 then
      verdict = 'r'
    else
      if v[2] then
        -- the key holds sends or claims (they set 'x'): it lives long enough already
        write(key, {newTat, 't'}, tonumber(v[2]), newTat + 1000, 60000)
      else
        -- the rate limit alone: expires as the TAT passes, as a plain key would
        redis.call('ZADD', key, newTat, 't')
        redis.call('PEXPIRE', key, math.ceil(newTat - now) + 1000)
      end
      verdict = at == 0 and 'n' or ('d:' .. fmt(at))
    end
    a = a + 4
  elseif mode == 'h' then
    local x = tonumber(redis.call('ZSCORE', key, 'x'))
    write(key, {tonumber(ARGV[a + 4]), 'c|' .. ARGV[a + 1] .. '|' .. ARGV[a + 2] .. '|' .. ARGV[a + 3]}, x,
        now + keep / 2, keep / 2)
    verdict = 'h'
    a = a + 5
  else
    local interval, tolerance, deadline = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    local id, channel, category = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
    local rankText, onCap, held = ARGV[a + 7], ARGV[a + 8], ARGV[a + 9]
    local rank = tonumber(rankText)
    local group, mask = groups[tonumber(ARGV[a + 10])], ARGV[a + 11]
    a = a + 12
    local claim = 'c|' .. id .. '|' .. rankText .. '|' .. category
    if held == '1' then
      -- its own claim (held until now) no longer stands in its way
      redis.call('ZREM', key, claim)
    end
    local all = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
    -- the entries, parsed once: sends (score, channel, category), claims (score, priority, category)
    local tat, expires = nil, nil
    local ss, sch, scat, cs, cpr, ccat = {}, {}, {}, {}, {}, {}
    for e = 1, #all, 2 do
      local m = all[e]
      local b = string.byte(m, 1)
      if b == 115 then -- 's'
        local i = #ss + 1
        ss[i] = tonumber(all[e + 1])
        sch[i], scat[i] = string.match(m, '^s|[^|]*|([^|]*)|(.*)$')
      elseif b == 99 then -- 'c'
        local i = #cs + 1
        cs[i] = tonumber(all[e + 1])
        local pr
        pr, ccat[i] = string.match(m, '^c|[^|]*|([^|]*)|(.*)$')
        cpr[i] = tonumber(pr)
      elseif b == 116 then tat = tonumber(all[e + 1])      -- 't'
      elseif b == 120 then expires = tonumber(all[e + 1])  -- 'x'
      end
    end
    if (ss[1] and ss[1] < trimBefore) or (cs[1] and cs[1] < trimBefore) then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. trimBefore)
    end
    local capped = nil
    if #ss + #cs > 0 and string.find(mask, '1', 1, true) then
      for j = 1, #mask do
        if string.sub(mask, j, j) == '1' then
          local ri = group.first + j - 1
          local rule, w = rules[ri], group[ri]
          local from, to = w[1], w[2]
          local used, higher, lastDue = 0, 0, 0
          local times = {}
          for i = 1, #ss do
            local s = ss[i]
            if s >= from and s < to and matches(rule.kind, rule.value, sch[i], scat[i]) then
              used = used + 1
              times[used] = s
            end
          end
          -- claims due in the window, and those a little overdue (being promoted)
          for i = 1, #cs do
            local d = cs[i]
            if d >= now - 300000 and d < to and cpr[i] > rank and (rule.kind ~= 'category' or ccat[i] == rule.value) then
              higher = higher + 1
              if d > lastDue then lastDue = d end
            end
          end
          if used + higher >= rule.limit then
            local code = used >= rule.limit and 'c' or 'p'
            -- when it could go: behind a claim, just after the claim is due; a calendar window at
            -- its end; a rolling one when enough sends have aged out of it
            local reopen = to
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
        write(key, {capped.reopen, claim}, expires, now + keep / 2, keep / 2)
        verdict = 'w:' .. fmt(capped.reopen) .. ':' .. capped.rule
      else
        verdict = capped.code .. ':' .. capped.rule
      end
    else
      local at, newTat = gcra(tat, interval, tolerance, deadline)
      if at < 0 then
        verdict = 'r'
      else
        write(key, {newTat, 't', at == 0 and now or at, 's|' .. id .. '|' .. channel .. '|' .. category}, expires,
            now + keep / 2, keep / 2)
        verdict = at == 0 and 'n' or ('d:' .. fmt(at))
      end
    end
  end
  n = n + 1
  out[n] = verdict
end
redis.call('SET', request, table.concat(out, ','), 'PX', ARGV[1])
return out
