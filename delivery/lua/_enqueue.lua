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
  return {prio = A[b + 1], ttl = tonumber(A[b + 2]), delay = tonumber(A[b + 3]),
    at = tonumber(A[b + 4]), ma = A[b + 5], ik = A[b + 6], ck = A[b + 7], tp = A[b + 8],
    rr = A[b + 9], retention = tonumber(A[b + 10]), index_ttl = tonumber(A[b + 11]),
    cap = tonumber(A[b + 12]), keep = A[b + 13] == '1', esc = tonumber(A[b + 14])}
end

-- The first timeline event of a queued message: the same text for every message of
-- one script call (NOW is fixed), so it is formatted once; FIRST_EVENT is its field.
local QUEUED_EVENT = string.format('{"t":%d,"e":"queued","a":0}', NOW)
local FIRST_EVENT = F_EVENT .. '1'

local function enqueue_one(id, user, payload, o)
  local ik, ck, tp, ttl, retention = o.ik, o.ck, o.tp, o.ttl, o.retention

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
  local expires = NOW + ttl
  -- One HSET writes the whole new hash, its status and its first timeline event (only
  -- numbers and fixed words: written without cjson).
  local status, first
  if due > NOW then
    status = 'scheduled'
    first = string.format('{"t":%d,"e":"scheduled","a":0,"due":%d}', NOW, due)
  else
    status, first = 'queued', QUEUED_EVENT
  end
  if ck == '' and tp == '' and ik == '' and not o.keep and o.esc < 0 then
    redis.call('HSET', mkey, F_ID, id, F_USER, user, F_PRIORITY, o.prio, F_PAYLOAD, payload,
      F_CREATED_AT, NOW, F_EXPIRES_AT, expires, F_TTL, ttl, F_MAX_ATTEMPTS, o.ma,
      F_ATTEMPTS, 0, F_REPLY_REQUESTED, o.rr, F_STATUS, status, F_EVENTS, 1,
      FIRST_EVENT, first)
  else
    local fields = {F_ID, id, F_USER, user, F_PRIORITY, o.prio, F_PAYLOAD, payload,
      F_CREATED_AT, NOW, F_EXPIRES_AT, expires, F_TTL, ttl, F_MAX_ATTEMPTS, o.ma,
      F_ATTEMPTS, 0, F_REPLY_REQUESTED, o.rr, F_STATUS, status, F_EVENTS, 1,
      FIRST_EVENT, first}
    if ck ~= '' then fields[#fields + 1] = F_COLLAPSE_KEY; fields[#fields + 1] = ck end
    if tp ~= '' then fields[#fields + 1] = F_TOPIC; fields[#fields + 1] = tp end
    if ik ~= '' then fields[#fields + 1] = F_IDEMPOTENCY_KEY; fields[#fields + 1] = ik end
    if o.keep then fields[#fields + 1] = F_KEEP; fields[#fields + 1] = '1' end
    if o.esc >= 0 then
      fields[#fields + 1] = F_ESCALATE_AFTER; fields[#fields + 1] = o.esc
      -- `undelivered` is due escalate_ms after the message is (due to be) sent
      redis.call('ZADD', key_escalate(), due + o.esc, id)
    end
    redis.call('HSET', mkey, unpack(fields))
  end
  redis.call('PEXPIREAT', mkey, expires + retention)
  if ik ~= '' then redis.call('SET', key_idem(user, ik), id, 'PX', ttl + retention) end

  if status == 'scheduled' then
    redis.call('ZADD', key_delayed(), due, id)
  else
    redis.call('XADD', key_stream(o.prio), '*', ENTRY_MESSAGE, id, ENTRY_USER, user)
  end

  -- the user's counters and index are written once per user when the script ends
  count(user, status, 1)  -- the total is the sum of the status counters
  local u = user_acc(user)
  local ids = u.ids
  if not ids then
    ids = {}
    u.ids = ids
  end
  ids[#ids + 1] = NOW
  ids[#ids + 1] = id
  u.ttl, u.cap = o.index_ttl, o.cap

  if ck ~= '' then
    local ckey = key_collapse(user, ck)
    local old = redis.call('GET', ckey)
    if old and old ~= id then
      local okey = key_msg(old)
      local r = redis.call('HMGET', okey, F_STATUS, F_ATTEMPTS, F_KEEP, F_EVENTS)
      local s, attempt, keep, n = r[1], r[2], r[3], r[4]
      if (s == 'queued' or s == 'scheduled' or s == 'parked') and keep ~= '1' then
        finish(okey, old, user, s, 'cancelled', n, attempt, {by = id}, retention, 'collapsed')
      end
    end
    redis.call('SET', ckey, id, 'PX', ttl)
  end
  return id, status, 1
end
