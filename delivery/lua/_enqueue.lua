-- enqueue_one(id, user, payload, o): the body of enqueue.lua as a function, so that
-- other scripts (enqueue_many.lua, task.lua) accept messages in the same atomic step.
-- o holds the message's options as enqueue_opts() reads them; enqueue_many.lua shares
-- one o between all the messages of a batch that have the same options. Returns three
-- values (no table per message): id, status, created (1, or 0 for a repeat).
local function enqueue_opts(A, b)
  -- A[b + 1] .. A[b + 14]: priority, ttl_ms, delay_ms (-1: none), deliver_at_ms
  -- (-1: none), max_attempts, idempotency key, collapse key, topic, reply_requested
  -- (0/1), retention_ms, user index ttl ms, user index cap, keep (1: never collapsed),
  -- escalate_ms (-1: none)
  local ttl, retention = tonumber(A[b + 2]), tonumber(A[b + 10])
  local o = {prio = A[b + 1], ttl = ttl, ttl_s = A[b + 2], delay = tonumber(A[b + 3]),
    at = tonumber(A[b + 4]), ma = A[b + 5], ik = A[b + 6], ck = A[b + 7], tp = A[b + 8],
    rr = A[b + 9], retention = retention, index_ttl = tonumber(A[b + 11]),
    cap = tonumber(A[b + 12]), keep = A[b + 13] == '1', esc = tonumber(A[b + 14])}
  -- what every message of the set writes, as text once per call (NOW is fixed)
  o.expires_s = int(NOW + ttl)
  o.gone_s = int(NOW + ttl + retention)  -- when the hash expires
  o.stream = key_stream(o.prio)
  o.plain = o.ik == '' and o.ck == '' and o.tp == '' and o.rr ~= '1' and not o.keep
    and o.esc < 0
  return o
end

-- The first timeline event of a scheduled message is written (with its due time); a
-- queued one's is implied by its creation time (see event_text in _lib.lua).
local FIRST_EVENT = F_EVENT .. '1'

local function enqueue_one(id, user, payload, o)
  local ik, ck, tp = o.ik, o.ck, o.tp

  if ik ~= '' then
    local existing = redis.call('GET', key_idem(user, ik))
    if existing then
      return existing, redis.call('HGET', key_msg(existing), F_STATUS) or 'unknown', 0
    end
  end

  -- Ids are random: an existing hash means this very call ran already (a client's
  -- retry after a lost reply, a reload after NOSCRIPT). Answer as before; change nothing.
  local mkey = key_msg(id)
  local known = redis.call('HGET', mkey, F_STATUS)
  if known then return id, known, 0 end

  local due = NOW
  if o.delay >= 0 then due = NOW + o.delay elseif o.at >= 0 then due = o.at end
  -- One HSET writes the whole new hash and its status. Left out until they are not:
  -- attempts (0), reply_requested (0), the ttl (expires - created) and, for a message
  -- queued at once, its first timeline event (queued at created).
  local status = 'queued'
  if due > NOW then status = 'scheduled' end
  if o.plain and status == 'queued' then
    redis.call('HSET', mkey, F_USER, user, F_PRIORITY, o.prio, F_PAYLOAD, payload,
      F_CREATED_AT, NOW_S, F_EXPIRES_AT, o.expires_s, F_MAX_ATTEMPTS, o.ma, F_STATUS, status)
  else
    local fields = {F_USER, user, F_PRIORITY, o.prio, F_PAYLOAD, payload,
      F_CREATED_AT, NOW_S, F_EXPIRES_AT, o.expires_s, F_MAX_ATTEMPTS, o.ma, F_STATUS, status}
    if status == 'scheduled' then
      fields[#fields + 1] = F_EVENTS
      fields[#fields + 1] = '1'
      fields[#fields + 1] = FIRST_EVENT
      fields[#fields + 1] = '{"t":' .. NOW_S .. ',"e":"scheduled","a":0,"due":' .. int(due) .. '}'
    end
    if ck ~= '' then fields[#fields + 1] = F_COLLAPSE_KEY; fields[#fields + 1] = ck end
    if tp ~= '' then fields[#fields + 1] = F_TOPIC; fields[#fields + 1] = tp end
    if ik ~= '' then fields[#fields + 1] = F_IDEMPOTENCY_KEY; fields[#fields + 1] = ik end
    if o.rr == '1' then fields[#fields + 1] = F_REPLY_REQUESTED; fields[#fields + 1] = '1' end
    if o.keep then fields[#fields + 1] = F_KEEP; fields[#fields + 1] = '1' end
    if o.esc >= 0 then
      fields[#fields + 1] = F_ESCALATE_AFTER; fields[#fields + 1] = o.esc
      -- `undelivered` is due escalate_ms after the message is (due to be) sent
      redis.call('ZADD', key_escalate(), due + o.esc, id)
    end
    redis.call('HSET', mkey, unpack(fields))
  end
  redis.call('PEXPIREAT', mkey, o.gone_s)
  if ik ~= '' then
    redis.call('SET', key_idem(user, ik), id, 'PX', int(o.ttl + o.retention))
  end

  if status == 'scheduled' then
    redis.call('ZADD', key_delayed(), int(due), id)
  elseif o.plain then
    redis.call('XADD', o.stream, '*', ENTRY_MESSAGE, id, ENTRY_USER, user, ENTRY_PAYLOAD,
      payload, ENTRY_CREATED_AT, NOW_S)
  else
    add_entry(o.stream, id, user, payload, NOW_S, ck ~= '' and ck or nil,
      tp ~= '' and tp or nil, o.rr, o.keep and '1' or nil)
  end

  -- the user's index is written once per user when the script ends
  total(status)
  total('enqueued')  -- whoever enqueued it: the deployment-wide rate (delivery/totals.py)
  local u = user_acc(user)
  local ids = u.ids
  if not ids then
    ids = {}
    u.ids = ids
  end
  ids[#ids + 1] = NOW_S
  ids[#ids + 1] = id
  u.ttl, u.cap = o.index_ttl, o.cap
  if string.byte(id, -1) == 48 then u.check = true end  -- ends in 0: check the cap

  if ck ~= '' then
    local ckey = key_collapse(user, ck)
    local old = redis.call('GET', ckey)
    if old and old ~= id then
      local okey = key_msg(old)
      local r = redis.call('HMGET', okey, F_STATUS, F_ATTEMPTS, F_KEEP, F_EVENTS)
      local s, attempt, keep, n = r[1], r[2], r[3], r[4]
      if (s == 'queued' or s == 'scheduled' or s == 'parked') and keep ~= '1' then
        finish(okey, old, user, s, 'cancelled', n, attempt, {json = jstr('by', id), by = id},
          o.retention, 'collapsed')
      end
    end
    redis.call('SET', ckey, id, 'PX', o.ttl_s)
  end
  return id, status, 1
end
