-- enqueue_one(A, b): the body of enqueue.lua as a function, so that other scripts
-- (enqueue_many.lua, task.lua) accept messages in the same atomic step. The message's
-- arguments are A[b + 1] .. A[b + 16], as documented in enqueue.lua.
local function enqueue_one(A, b)
  local id, user, prio, payload = A[b + 1], A[b + 2], A[b + 3], A[b + 4]
  local ttl, delay, at = tonumber(A[b + 5]), tonumber(A[b + 6]), tonumber(A[b + 7])
  local ma, ik, ck, tp, rr = A[b + 8], A[b + 9], A[b + 10], A[b + 11], A[b + 12]
  local retention, index_ttl = tonumber(A[b + 13]), tonumber(A[b + 14])

  if ik ~= '' then
    local existing = redis.call('GET', key_idem(user, ik))
    if existing then
      return {existing, redis.call('HGET', key_msg(existing), 's') or 'unknown', 0}
    end
  end

  -- Ids are random: an existing hash means this very call ran already (a client's
  -- retry after a lost reply, a reload after NOSCRIPT). Answer as before; change nothing.
  local mkey = key_msg(id)
  local known = redis.call('HGET', mkey, 's')
  if known then return {id, known, 0} end

  local due = NOW
  if delay >= 0 then due = NOW + delay elseif at >= 0 then due = at end
  local expires = NOW + ttl
  -- One HSET writes the whole new hash, its status and its first timeline event (only
  -- numbers and fixed words: written without cjson).
  local status, first
  if due > NOW then
    status = 'scheduled'
    first = string.format('{"t":%d,"e":"scheduled","a":0,"due":%d}', NOW, due)
  else
    status, first = 'queued', string.format('{"t":%d,"e":"queued","a":0}', NOW)
  end
  local fields = {'id', id, 'u', user, 'p', prio, 'pl', payload, 'ca', NOW, 'ea', expires,
    'tl', ttl, 'ma', ma, 'a', 0, 'rr', rr, 's', status, 'n', 1, 'e1', first}
  if ck ~= '' then fields[#fields + 1] = 'ck'; fields[#fields + 1] = ck end
  if tp ~= '' then fields[#fields + 1] = 'tp'; fields[#fields + 1] = tp end
  if ik ~= '' then fields[#fields + 1] = 'ik'; fields[#fields + 1] = ik end
  if A[b + 16] == '1' then fields[#fields + 1] = 'keep'; fields[#fields + 1] = '1' end
  redis.call('HSET', mkey, unpack(fields))
  redis.call('PEXPIREAT', mkey, expires + retention)
  if ik ~= '' then redis.call('SET', key_idem(user, ik), id, 'PX', ttl + retention) end

  if status == 'scheduled' then
    redis.call('ZADD', key_delayed(), due, id)
  else
    redis.call('XADD', key_stream(prio), '*', 'm', id, 'u', user)
  end

  -- the user's counters and index are written once per user when the script ends
  count(user, status, 1)  -- the total is the sum of the status counters
  local u = user_acc(user)
  u.ids = u.ids or {}
  u.ids[#u.ids + 1] = NOW
  u.ids[#u.ids + 1] = id
  u.ttl, u.cap = index_ttl, tonumber(A[b + 15])

  if ck ~= '' then
    local ckey = key_collapse(user, ck)
    local old = redis.call('GET', ckey)
    if old and old ~= id then
      local okey = key_msg(old)
      local o = redis.call('HMGET', okey, 's', 'a', 'keep', 'n')
      if (o[1] == 'queued' or o[1] == 'scheduled' or o[1] == 'parked') and o[3] ~= '1' then
        finish(okey, old, user, o[1], 'cancelled', o[4], o[2], {by = id}, retention,
          'collapsed')
      end
    end
    redis.call('SET', ckey, id, 'PX', ttl)
  end
  return {id, status, 1}
end
