-- Shared by userdata.lua, merge-out.lua and merge-in.lua (prepended to each): the selection
-- structures of one attribute of one user in an index shard.
-- P the shard's prefix (Keys.userBits), a = [type, value] (s string, b boolean, n number,
-- t timestamp, g location [lat, lon, at]), idx the user's index, off its bit in the shard.

-- Sets (on = true) or clears the attribute's bits and members: the presence bit, and the value
-- bitmap (strings, booleans), the sorted set (numbers, times) or the geo set (locations).
-- setBit(key, off, v), when given, writes the bits (userdata.lua buffers them); else SETBIT.
local function markAttr(P, name, a, idx, off, on, setBit)
  setBit = setBit or function(key, o, v) redis.call('SETBIT', key, o, v) end
  local ty = a[1]
  if ty == 's' or ty == 'b' then
    setBit(P .. 'v:' .. name .. '=' .. tostring(a[2]), off, on and 1 or 0)
  elseif ty == 'n' or ty == 't' then
    if on then redis.call('ZADD', P .. 'n:' .. name, a[2], idx) else redis.call('ZREM', P .. 'n:' .. name, idx) end
  elseif ty == 'g' then
    if on then
      redis.call('GEOADD', P .. 'g:' .. name, a[2][2], a[2][1], idx)
    else
      redis.call('ZREM', P .. 'g:' .. name, idx)
    end
  end
  setBit(P .. 'a:' .. name, off, on and 1 or 0)
end
