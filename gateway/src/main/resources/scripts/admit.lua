-- Admission of many messages in one call (one call per ring-handler batch and slot group): the
-- frequency caps with priority claims, then the per-user rate limit (GCRA).
-- A user's state is a small sorted set (Keys.admission), in score bands that never meet:
--   't'  the GCRA theoretical arrival time (score: epoch ms);
--   'x'  when the key expires (epoch ms; moved on only when needed);
--   'm'  when the log is next trimmed (epoch ms; once a day);
--   'k|<rule id>'  the counter of a cap rule: score = boundary * 2048 + count, the number of the
--       user's sends in the rule's scope admitted at or after boundary (epoch ms). A calendar rule's
--       boundary is its window's start (a counter of an earlier window reads as 0); a rolling
--       rule's is where the counter was last aged (sends before it have left the window);
--   'n'  the number of pending claims (score < 2^20);
--   'c|<messageId>|<priority>|<category>'  the claim of a held marketing message, score = -due.
-- Beside it, the user's log of marketing sends (Keys.admissionLog): 's|<messageId>|<channel>|<category>'
-- scored by when each was admitted. The log is read only to age a rolling counter, to start a
-- counter for a rule new to the user and to give a place back (release.lua).
-- So a marketing message costs one read of the small key (ZMSCORE of t, x, m, n and its rules'
-- counters), one ZADD NX of its log entry (0: a journal replay of a message that holds its place
-- already, not counted again) and one ZADD of the small key, whatever the user's history. The log
-- lives as long as the small key: its PEXPIRE moves on with 'x' and at the daily trim ('m'; a
-- log that was not there then leaves 'm' due, so the next call sets it). A rolling counter is
-- aged only when the count it holds, an upper bound, would
-- bind; claims are read only when there are any.
-- KEYS: per check its user's key, and for mode 'c' then its user's log; last this call's request
--   key (Keys.rateLimitRequest): the verdicts are kept there for ARGV[1] ms, and a call with the
--   same request key returns them without touching anything (a retried call consumes nothing twice).
-- ARGV[1] remember ms, ARGV[2] now (ms, the gateway's clock), ARGV[3] log entries and claims older
--   than this are trimmed, ARGV[4] ms a key with sends or claims lives after the last one is added;
--   then the rule table: R, and R rules of five values: id, limit, scope kind ('all', 'channel',
--   'category'), scope value, rolling length ms (0: a calendar window);
--   then the window groups (one per app and zone): G, and per group: first rule, rule count, the
--   app's rate-limit interval and burst tolerance (ms), and per rule its window start and end (ms)
--   (a rolling rule's are now - length, now + length: a claim due before a send made now leaves
--   the window stands in its way);
--   then the rule sets: S, and per set: window group, and which of its rules apply ('1'/'0' each);
--   then per check, by mode:
--   'g' (the rate limit only): interval ms, burst tolerance ms, deadline;
--   'c' (caps, then the rate limit): rule set, deadline, message id, channel, category, and
--       flags = priority * 4 + 2 (onCap defer) + 1 (held: remove its own claim first);
--   'h' (register the claim of a message held until due): message id, priority, category, due.
-- Reply, one string per check: 'n' send now; 'd:<ms>' deferred to the reserved rate-limit slot;
--   'r' dropped, the slot is past the deadline; 'c:<rule>' capped; 'p:<rule>' capped because a
--   higher-priority claim is due in the window; 'w:<ms>:<rule>' capped, waiting (onCap defer) until
--   the window reopens, its claim registered; 'h' claim registered.
-- A message that passes takes its place (counted, logged); the record stage gives it back if the
-- message ends without being accepted (release.lua).
local request = KEYS[#KEYS]
local done = redis.call('GET', request)
if done then
  local out = {}
  for v in string.gmatch(done, '[^,]+') do out[#out + 1] = v end
  return out
end
local SCALE = 2048
local DAY = 86400000
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
              len = tonumber(ARGV[a + 4]), key = 'k|' .. ARGV[a]}
  a = a + 5
end
local groups = {}
local g = tonumber(ARGV[a])
a = a + 1
for gi = 1, g do
  local first, count = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local w = {first = first, count = count, interval = tonumber(ARGV[a + 2]), tolerance = tonumber(ARGV[a + 3])}
  for j = 0, count - 1 do
    w[first + j] = {tonumber(ARGV[a + 4 + j * 2]), tonumber(ARGV[a + 5 + j * 2])}
  end
  groups[gi] = w
  a = a + 4 + count * 2
end
local sets = {}
local ns = tonumber(ARGV[a])
a = a + 1
for si = 1, ns do
  local group, mask = groups[tonumber(ARGV[a])], ARGV[a + 1]
  local set = {group = group, idx = {}, names = {}}
  for j = 1, #mask do
    if string.byte(mask, j) == 49 then -- '1'
      local ri = group.first + j - 1
      set.idx[#set.idx + 1] = ri
      set.names[#set.names + 1] = rules[ri].key
    end
  end
  sets[si] = set
  a = a + 2
end

local function matches(kind, value, channel, category)
  if kind == 'all' then return true end
  if kind == 'channel' then
    return channel == value or (value == 'push' and (channel == 'apns' or channel == 'fcm'))
  end
  return category == value
end

local function fmt(ms)
  return string.format('%d', ms)
end

-- The admission times of the logged sends in the rule's scope admitted in [from, to), ascending.
local function logged(key, rule, from, to)
  local times = {}
  local e = redis.call('ZRANGEBYSCORE', key, fmt(from), '(' .. fmt(to), 'WITHSCORES')
  for i = 1, #e, 2 do
    local m = e[i]
    if string.byte(m, 1) == 115 then -- 's'
      local ch, cat = string.match(m, '^s|[^|]*|([^|]*)|(.*)$')
      if matches(rule.kind, rule.value, ch, cat) then times[#times + 1] = tonumber(e[i + 1]) end
    end
  end
  return times
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
    z[#z + 1] = fmt(math.ceil(liveUntil + slack))
    z[#z + 1] = 'x'
    redis.call('ZADD', key, unpack(z))
    -- relative: the gateway's clock need not be Redis's (tests move it)
    redis.call('PEXPIRE', key, fmt(math.ceil(liveUntil + slack - now)))
  elseif #z > 0 then
    redis.call('ZADD', key, unpack(z))
  end
end

-- Registers a claim (score -due); the claim count, one more if it is new.
local function claimed(key, claim, due, claims)
  return claims + redis.call('ZADD', key, fmt(-due), claim)
end

local out = {}
local n = 0
local k = 0
-- scratch tables reused by every check
local bound, count, stale, z = {}, {}, {}, {}
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
    local v = redis.call('ZMSCORE', key, 'x', 'n')
    local claims = claimed(key, 'c|' .. ARGV[a + 1] .. '|' .. ARGV[a + 2] .. '|' .. ARGV[a + 3],
        tonumber(ARGV[a + 4]), tonumber(v[2]) or 0)
    write(key, {claims, 'n'}, tonumber(v[1]), now + keep / 2, keep / 2)
    verdict = 'h'
    a = a + 5
  else
    local set = sets[tonumber(ARGV[a + 1])]
    local deadline = tonumber(ARGV[a + 2])
    local id, channel, category = ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
    local flags = tonumber(ARGV[a + 6])
    a = a + 7
    k = k + 1
    local log = KEYS[k]
    local group, applied = set.group, set.idx
    local interval, tolerance = group.interval, group.tolerance
    local rank = math.floor(flags / 4)
    local rankText = fmt(rank)
    local onCap = (flags % 4 >= 2) and 'defer' or 'drop'
    local held = flags % 2 == 1 and '1' or '0'
    local send = 's|' .. id .. '|' .. channel .. '|' .. category
    local v = redis.call('ZMSCORE', key, 't', 'x', 'm', 'n', unpack(set.names))
    local tat, expires, trimAt = tonumber(v[1]), tonumber(v[2]), tonumber(v[3])
    local claimsRead = tonumber(v[4]) or 0
    local claims = claimsRead
    local claim = nil
    if held == '1' then
      -- its own claim (held until now) no longer stands in its way
      claim = 'c|' .. id .. '|' .. rankText .. '|' .. category
      claims = claims - redis.call('ZREM', key, claim)
    end
    local capped = nil
    local zn = 0
    do
      local cl = nil
      if claims > 0 then
        local latest = now
        for i = 1, #applied do
          local to = group[applied[i]][2]
          if to > latest then latest = to end
        end
        cl = redis.call('ZRANGEBYSCORE', key, '(' .. fmt(-latest), fmt(-(now - 300000)), 'WITHSCORES')
      end
      for i = 1, #applied do
        local ri = applied[i]
        local rule = rules[ri]
        local from = rule.len > 0 and now - rule.len or group[ri][1]
        local to = group[ri][2]
        local s = tonumber(v[4 + i])
        local b, c, dirty
        if s then
          b = math.floor(s / SCALE)
          c = s - b * SCALE
          if rule.len == 0 and b < from then b, c, dirty = from, 0, true end
        elseif expires then
          -- a rule new to this user's key (or renamed): counted once from the log
          b, c, dirty = from, #logged(log, rule, from, now + DAY), true
        else
          b, c, dirty = from, 0, true
        end
        -- claims due in the window with a higher priority (and those a little overdue: being promoted)
        local higher, lastDue = 0, 0
        if cl then
          for e = 1, #cl, 2 do
            local d = -tonumber(cl[e + 1])
            if d < to then
              local pr, ccat = string.match(cl[e], '^c|[^|]*|([^|]*)|(.*)$')
              if pr and tonumber(pr) > rank and (rule.kind ~= 'category' or ccat == rule.value) then
                higher = higher + 1
                if d > lastDue then lastDue = d end
              end
            end
          end
        end
        if c + higher >= rule.limit and rule.len > 0 and b < from then
          -- an upper bound that would bind: age it (from the log; recounted when the log no
          -- longer reaches back to the boundary)
          if b >= from - DAY then
            c = c - #logged(log, rule, b, from)
            if c < 0 then c = 0 end
          else
            c = #logged(log, rule, from, now + DAY)
          end
          b, dirty = from, true
        end
        bound[i], count[i], stale[i] = b, c, dirty
        if c + higher >= rule.limit then
          local code = c >= rule.limit and 'c' or 'p'
          -- when it could go: behind a claim, just after the claim is due; a calendar window at
          -- its end; a rolling one when enough sends have aged out of it
          local reopen = to
          if code == 'p' then
            reopen = lastDue + 1000
          elseif rule.len > 0 then
            reopen = now + rule.len
            if onCap == 'defer' then
              local times = logged(log, rule, from, now + DAY)
              if #times >= rule.limit then reopen = times[#times - rule.limit + 1] + rule.len end
            end
          end
          capped = {code = code, rule = rule.id, reopen = reopen, upTo = i}
          break
        end
      end
    end
    -- the counters read (or made): all of them, or those up to the one that capped
    local known = capped and capped.upTo or #applied
    local counted = 0 -- of those, how many to write back unchanged (when stale)
    if capped and redis.call('ZSCORE', log, send) then
      -- a journal replay of a message admitted before: it holds its place already
      capped = nil
    end
    if capped then
      counted = known
      if onCap == 'defer' and capped.reopen <= deadline then
        claims = claimed(key, claim or ('c|' .. id .. '|' .. rankText .. '|' .. category), capped.reopen, claims)
        verdict = 'w:' .. fmt(capped.reopen) .. ':' .. capped.rule
      else
        verdict = capped.code .. ':' .. capped.rule
      end
    else
      local at, newTat = gcra(tat, interval, tolerance, deadline)
      if at < 0 then
        verdict = 'r'
        counted = known
      else
        z[1], z[2] = newTat, 't'
        zn = 2
        if redis.call('ZADD', log, 'NX', fmt(now), send) == 1 then
          for i = 1, #applied do
            z[zn + 1], z[zn + 2] = fmt(bound[i] * SCALE + count[i] + 1), rules[applied[i]].key
            zn = zn + 2
          end
        else
          counted = known -- a replay: not counted again
        end
        verdict = at == 0 and 'n' or ('d:' .. fmt(at))
      end
    end
    for i = 1, counted do
      if stale[i] then
        z[zn + 1], z[zn + 2] = fmt(bound[i] * SCALE + count[i]), rules[applied[i]].key
        zn = zn + 2
      end
    end
    -- once a day: the log and stale claims past the longest window go, and the log's expiry moves
    -- on (a log emptied here, or not there yet, leaves 'm' due: the next call with a send sets it)
    local moving = (expires or 0) < now + keep / 2
    if not trimAt or trimAt <= now then
      if trimAt then
        redis.call('ZREMRANGEBYSCORE', log, '-inf', '(' .. fmt(trimBefore))
        claims = claims - redis.call('ZREMRANGEBYSCORE', key, '(' .. fmt(-trimBefore), '(0')
      end
      if redis.call('PEXPIRE', log, fmt(keep)) == 1 then
        z[zn + 1], z[zn + 2] = fmt(now + DAY), 'm'
        zn = zn + 2
      end
    elseif moving then
      redis.call('PEXPIRE', log, fmt(keep))
    end
    if claims ~= claimsRead then
      z[zn + 1], z[zn + 2] = fmt(claims), 'n'
      zn = zn + 2
    end
    if moving then
      z[zn + 1], z[zn + 2] = fmt(math.ceil(now + keep)), 'x'
      zn = zn + 2
      redis.call('ZADD', key, unpack(z, 1, zn))
      redis.call('PEXPIRE', key, fmt(keep))
    elseif zn > 0 then
      redis.call('ZADD', key, unpack(z, 1, zn))
    end
  end
  n = n + 1
  out[n] = verdict
end
redis.call('SET', request, table.concat(out, ','), 'PX', ARGV[1])
return out
