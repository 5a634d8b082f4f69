-- enqueue_one(A): the body of enqueue.lua as a function, so that other scripts
-- (task.lua) can accept a message in the same atomic step. A is the argument list
-- documented in enqueue.lua.
local function enqueue_one(A)
  local id, user, prio, payload = A[1], A[2], A[3], A[4]
  local ttl, delay, at = tonumber(A[5]), tonumber(A[6]), tonumber(A[7])
  local ma, ik, ck, tp, rr = A[8], A[9], A[10], A[11], A[12]
  local retention, index_ttl, index_cap = tonumber(A[13]), tonumber(A[14]), tonumber(A[15])

  if ik ~= '' then
    local existing = redis.call('GET', key_idem(user, ik))
    if existing then
      return {existing, redis.call('HGET', key_msg(existing), 's') or 'unknown', 0}
    end
  end

  -- Ids are random: an existing hash means this very call ran already (a client's
  -- retry after a lost reply, a reload after NOSCRIPT). Answer as before; change nothing.
  local known = redis.call('HGET', key_msg(id), 's')
  if known then return {id, known, 0} end

  local due = NOW
  if delay >= 0 then due = NOW + delay elseif at >= 0 then due = at end
  local expires = NOW + ttl
  local mkey = key_msg(id)
  -- One HSET writes the whole new hash, its status and its first timeline event (what
  -- event() would append to a fresh hash): fewer calls on the hottest path.
  local status, first
  if due > NOW then
    status, first = 'scheduled', {t = NOW, e = 'scheduled', a = 0, due = due}
  else
    status, first = 'queued', {t = NOW, e = 'queued', a = 0}
  end
  local fields = {'id', id, 'u', user, 'p', prio, 'pl', payload, 'ca', NOW, 'ea', expires,
    'tl', ttl, 'ma', ma, 'a', 0, 'rr', rr, 's', status, 'n', 1, 'e1', cjson.encode(first)}
  if ck ~= '' then fields[#fields + 1] = 'ck'; fields[#fields + 1] = ck end
  if tp ~= '' then fields[#fields + 1] = 'tp'; fields[#fields + 1] = tp end
  if ik ~= '' then fields[#fields + 1] = 'ik'; fields[#fields + 1] = ik end
  if A[16] == '1' then fields[#fields + 1] = 'keep'; fields[#fields + 1] = '1' end
  redis.call('HSET', mkey, unpack(fields))
  redis.call('PEXPIREAT', mkey, expires + retention)
  if ik ~= '' then redis.call('SET', key_idem(user, ik), id, 'PX', ttl + retention) end

  if status == 'scheduled' then
    redis.call('ZADD', key_delayed(), due, id)
  else
    redis.call('XADD', key_stream(prio), '*', 'm', id, 'u', user)
  end

  local sk = key_user_stats(user)
  redis.call('HINCRBY', sk, status, 1)
  redis.call('HINCRBY', sk, 'total', 1)
  redis.call('PEXPIRE', sk, index_ttl)
  local uk = key_user_msgs(user)
  redis.call('ZADD', uk, NOW, id)
  redis.call('ZREMRANGEBYSCORE', uk, '-inf', NOW - index_ttl)
  if redis.call('ZCARD', uk) > index_cap then
    redis.call('ZREMRANGEBYRANK', uk, 0, -(index_cap + 1))
  end
  redis.call('PEXPIRE', uk, index_ttl)

  if ck ~= '' then
    local ckey = key_collapse(user, ck)
    local old = redis.call('GET', ckey)
    if old and old ~= id then
      local okey = key_msg(old)
      local o = redis.call('HMGET', okey, 's', 'a', 'keep')
      if (o[1] == 'queued' or o[1] == 'scheduled' or o[1] == 'parked') and o[3] ~= '1' then
        set_status(okey, user, o[1], 'cancelled')
        event(okey, 'collapsed', o[2], {by = id})
        unlink(old, user)
        local keep = NOW + retention
        if redis.call('PTTL', okey) > retention then redis.call('PEXPIREAT', okey, keep) end
      end
    end
    redis.call('SET', ckey, id, 'PX', ttl)
  end
  return {id, status, 1}
end
