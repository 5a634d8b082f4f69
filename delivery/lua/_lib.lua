-- Prelude of every Courier script (scripts.py prepends it, after what it generates
-- from the Python tables: the key_* functions (delivery/keys.py), the field constants
-- F_* (message hash), ENTRY_*, DLQ_*, TASK_*, CONN_*, STAT_* (delivery/fields.py),
-- MEMBER_SEP (delivery/members.py) and the ALLOWED transition table).
-- KEYS[1] is the partition prefix P ("courier:{p3}:"): every key a script touches
-- is built from it, so each script stays inside one Cluster slot.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local NOW = now_ms()
local RANK = {high = 0, normal = 1, low = 2}
local FINAL = {delivered = true, expired = true, cancelled = true}

-- Whether old -> new is in the transition table (ALLOWED: ' queued>sent ... ').
local function allowed(old, new)
  return string.find(ALLOWED, ' ' .. tostring(old) .. '>' .. new .. ' ', 1, true) ~= nil
end
-- Scripts that must not run while Redis refuses writes (out of memory: maxmemory with
-- noeviction) call this before their first write. SETRANGE of an empty string writes
-- nothing, but Redis refuses it, like any write that could grow memory, when the
-- script started out of memory and has written nothing yet: the script ends with
-- nothing done. retry, bury and dispatch use it, so that while Redis is full no
-- attempt is counted and nothing is buried or sent.
local function refuse_when_full()
  redis.call('SETRANGE', key_gate(), 0, '')
end

-- Redis 7 knows PEXPIREAT ... LT (Redis 6.2 scripts have no REDIS_VERSION_NUM).
local HAS_LT = (redis.REDIS_VERSION_NUM or 0) >= 0x070000

-- Writes to users' own keys (status counters, message index, ack latencies) are
-- gathered while a script runs and made once per user when it ends: scripts.py runs
-- the body of every script that uses them as a function, then flush(). A batch that
-- touches a user several times writes each of the user's keys once.
local USERS = {}
local function user_acc(user)
  local u = USERS[user]
  if not u then
    u = {counts = {}}
    USERS[user] = u
  end
  return u
end

local function count(user, field, by)
  local c = user_acc(user).counts
  c[field] = (c[field] or 0) + by
end

-- Members added to / removed from the partition's inflight set, in one ZADD and one
-- ZREM when the script ends (ZADD pairs: deadline, id).
local INFLIGHT_ADD = {}
local INFLIGHT_DEL = {}

-- redis.call(cmd, key, <items>) in chunks that stay far below Lua's stack limit.
local function call_chunked(cmd, key, items, step)
  for i = 1, #items, step do
    redis.call(cmd, key, unpack(items, i, math.min(i + step - 1, #items)))
  end
end

-- A user's counters: one HINCRBY each, or for three and more (an ack moves four) one
-- HMGET and one HSET.
local function add_counts(sk, counts)
  local fields, bys = {}, {}
  for field, by in pairs(counts) do
    fields[#fields + 1] = field
    bys[#bys + 1] = by
  end
  if #fields < 3 then
    for i, field in ipairs(fields) do redis.call('HINCRBY', sk, field, bys[i]) end
    return
  end
  local cur = redis.call('HMGET', sk, unpack(fields))
  local pairs_ = {}
  for i, field in ipairs(fields) do
    pairs_[#pairs_ + 1] = field
    pairs_[#pairs_ + 1] = string.format('%d', (tonumber(cur[i]) or 0) + bys[i])
  end
  redis.call('HSET', sk, unpack(pairs_))
end

local function flush_user(user, u)
  local sk = key_user_stats(user)
  add_counts(sk, u.counts)
  if u.ids then
    -- enqueue: the index (capped, oldest dropped), and the lifetime of all the
    -- user's keys (the latency list lives as long as the counters): at least the
    -- index ttl from now, so they are set to ttl + 1/16 whenever less than ttl is left
    -- (once per 1/16 of the ttl for a busy user instead of three PEXPIREs per call)
    local uk = key_user_msgs(user)
    call_chunked('ZADD', uk, u.ids, 1000)
    if redis.call('ZCARD', uk) > u.cap then
      redis.call('ZREMRANGEBYRANK', uk, 0, -(u.cap + 1))
    end
    if redis.call('PTTL', uk) < u.ttl then
      local keep = u.ttl + math.floor(u.ttl / 16)
      redis.call('PEXPIRE', uk, keep)
      redis.call('PEXPIRE', sk, keep)
      redis.call('PEXPIRE', key_user_latency(user), keep)
    end
  end
  if u.keep_until then
    -- a replayed message lives again: the user's keys must outlive it (its acks count)
    for _, k in ipairs({sk, key_user_msgs(user), key_user_latency(user)}) do
      local left = redis.call('PTTL', k)
      if left == -1 or (left >= 0 and left < u.keep_until - NOW) then
        redis.call('PEXPIRE', k, u.keep_until - NOW)
      end
    end
  end
  if u.lat then
    local lk = key_user_latency(user)
    local len = 0
    for i = 1, #u.lat, 500 do
      len = redis.call('LPUSH', lk, unpack(u.lat, i, math.min(i + 499, #u.lat)))
    end
    if len > u.samples then redis.call('LTRIM', lk, 0, u.samples - 1) end
    if len == #u.lat then  -- new list: it lives as long as the counters
      local ttl = redis.call('PTTL', sk)
      if ttl > 0 then redis.call('PEXPIRE', lk, ttl) end
    end
  end
end

local function flush()
  for user, u in pairs(USERS) do flush_user(user, u) end
  if #INFLIGHT_ADD > 0 then call_chunked('ZADD', key_inflight(), INFLIGHT_ADD, 1000) end
  if #INFLIGHT_DEL > 0 then call_chunked('ZREM', key_inflight(), INFLIGHT_DEL, 1000) end
end

-- The fields that append one event to a message's timeline: e1, e2, ... (F_EVENT .. k)
-- and their count (F_EVENTS), which the caller read with the rest of the hash. Callers write them in the
-- same HSET as the change they record.
local function event_fields(n, name, attempt, detail)
  local e = detail or {}
  e['t'] = NOW
  e['e'] = name
  e['a'] = tonumber(attempt) or 0
  local k = (tonumber(n) or 0) + 1
  return k, cjson.encode(e)
end

-- Append one event (and extra field/value pairs) to a message's timeline: one HSET.
local function append(mkey, n, name, attempt, detail, ...)
  local k, e = event_fields(n, name, attempt, detail)
  redis.call('HSET', mkey, F_EVENTS, k, F_EVENT .. k, e, ...)
end

-- Lifecycle events for producers (delivery/events.py): the script that makes a change
-- appends its event to the partition's events stream, so an event exists exactly when
-- its change does. EVENTS_MAX (COURIER_EVENTS_MAX_LEN, generated by scripts.py) caps
-- the stream; 0 (COURIER_EVENTS=false) writes none. `...`: more EV_* field/value pairs.
local function emit(kind, id, user, attempt, ...)
  if EVENTS_MAX == 0 then return end
  redis.call('XADD', key_events(), 'MAXLEN', '~', EVENTS_MAX, '*', EV_TYPE, kind,
    EV_MESSAGE, id, EV_USER, user, EV_AT, NOW, EV_ATTEMPT, tonumber(attempt) or 0, ...)
end

-- The event of a status change, for the statuses producers hear of (set_status calls
-- it with the change's timeline detail and event name); key_msg(id) is P .. 'm:' .. id.
local MSG_KEY_LEN = #key_msg('')
local function emit_status(mkey, user, new, attempt, detail, evname)
  if EVENTS_MAX == 0 then return end
  local id, d = string.sub(mkey, MSG_KEY_LEN + 1), detail or {}
  if new == 'delivered' then
    local created = tonumber(redis.call('HGET', mkey, F_CREATED_AT)) or NOW
    emit(new, id, user, attempt, EV_CONN, d.conn or '', EV_NODE, d.node or '', EV_LATENCY,
      NOW - created)
  elseif new == 'parked' then
    emit(new, id, user, attempt, EV_UNTIL, d['until'] or '')
  elseif new == 'dead' then
    emit(new, id, user, attempt, EV_REASON, d.reason or '')
  elseif new == 'cancelled' then
    emit(new, id, user, attempt, EV_REASON, evname or new, EV_BY, d.by or '')
  elseif new == 'expired' then
    emit(new, id, user, attempt)
  end
end

-- Change status, enforcing the transition table and counting it for the user, with
-- its timeline event (named after the new status unless `evname` says otherwise) and
-- extra field/value pairs: one HSET; then its lifecycle event (emit_status). `n` is
-- the message's event count (F_EVENTS). Every status change goes through here.
local function set_status(mkey, user, old, new, n, attempt, evname, detail, ...)
  if not allowed(old, new) then
    return error('illegal transition ' .. tostring(old) .. ' -> ' .. new)
  end
  if old ~= new then
    count(user, old, -1)
    count(user, new, 1)
  end
  local k, e = event_fields(n, evname or new, attempt, detail)
  redis.call('HSET', mkey, F_STATUS, new, F_EVENTS, k, F_EVENT .. k, e, ...)
  emit_status(mkey, user, new, attempt, detail, evname)
end

-- Remove a message from the waiting structures its status `old` puts it in (a sent
-- message is only in inflight; a stale member elsewhere is dropped by the script
-- that finds it: promote, expire, unpark and retry all re-check the status).
-- (The collapse pointer stays until its ttl: an older message with the same key that
-- is still on its way, sent and then retried, is dropped at dispatch.)
local function unlink(id, user, old)
  redis.call('ZREM', key_inflight(), id)
  if old == 'sent' then return end
  redis.call('ZREM', key_delayed(), id)
  redis.call('ZREM', key_parked(user), id)
  redis.call('ZREM', key_parkx(), id)
end

-- A message became final: keep its hash for `retention_ms` more, never longer than it
-- had.
local function retain(mkey, retention_ms)
  if HAS_LT then  -- Redis 7: one command (a key without a ttl counts as infinite)
    redis.call('PEXPIREAT', mkey, NOW + retention_ms, 'LT')
    return
  end
  local ttl = redis.call('PTTL', mkey)
  if ttl < 0 or ttl > retention_ms then redis.call('PEXPIREAT', mkey, NOW + retention_ms) end
end

-- A final status: unlink, then retain the hash. The timeline event is named after
-- the new status unless `evname` says otherwise.
local function finish(mkey, id, user, old, new, n, attempt, detail, retention_ms, evname, ...)
  set_status(mkey, user, old, new, n, attempt, evname, detail, ...)
  unlink(id, user, old)
  retain(mkey, retention_ms)
end

-- Attempts used up (or a poison entry): status dead and an entry in the DLQ.
local function bury(mkey, id, user, old, n, attempt, reason, dlq_max, dead_keep_ms)
  if not allowed(old, 'dead') then  -- before anything is written
    return error('illegal transition ' .. tostring(old) .. ' -> dead')
  end
  unlink(id, user, old)
  local entry = redis.call('XADD', key_dlq(), 'MAXLEN', '~', dlq_max, '*',
    DLQ_ID, id, DLQ_USER, user, DLQ_REASON, reason, DLQ_ATTEMPTS, attempt)
  set_status(mkey, user, old, 'dead', n, attempt, nil, {reason = reason}, F_DEAD_LETTER,
    entry, F_LAST_ERROR, reason)
  local ttl = redis.call('PTTL', mkey)
  if ttl >= 0 and ttl < dead_keep_ms then redis.call('PEXPIRE', mkey, dead_keep_ms) end
end

-- Park for an offline user: highest priority first, oldest first. The score is exact
-- (< 2^53): priority, then ms since 2024 (good until 2041), then a sequence (0..4095).
-- Stream entry ids grow strictly in the order messages were enqueued, so a message
-- whose entry was made with it (within FRESH_MS of its creation) is ranked by its entry
-- id (ms, then sequence): messages of one millisecond, or of one script call whose
-- XADDs spread over several (the sequence restarts in each), keep their enqueue order.
-- A message queued again later (a retry, a hand-back) is ranked by its creation time.
local PARK_EPOCH_MS = 1704067200000
local FRESH_MS = 1000
local function park_score(prio, created, entry)
  local at, n = created, 0
  local ms, seq = string.match(entry or '', '^(%d+)%-(%d+)$')
  if ms then
    ms = tonumber(ms)
    if ms >= created and ms - created <= FRESH_MS then
      at, n = ms, math.min(tonumber(seq), 4095)
    end
  end
  return (RANK[prio] * 549755813888 + (at - PARK_EPOCH_MS)) * 4096 + n
end

local function park(mkey, id, user, old, n, prio, created, expires, attempt, park_ttl_ms,
    entry)
  local pk = key_parked(user)
  redis.call('ZADD', pk, park_score(prio, created, entry), id)
  local until_ms = math.min(expires, NOW + park_ttl_ms)
  redis.call('ZADD', key_parkx(), until_ms, id)
  local ttl = redis.call('PTTL', pk)
  if ttl < park_ttl_ms then redis.call('PEXPIRE', pk, park_ttl_ms) end
  set_status(mkey, user, old, 'parked', n, attempt, nil, {['until'] = until_ms})
end

-- A user's live connection as a member of key_conns: "node|conn" (node ids never hold
-- the separator; delivery/members.py builds and splits the same text).
local function conn_member(node, conn)
  return node .. MEMBER_SEP .. conn
end

-- Live connections of a user (conn_member texts): one read; the stale ones (seen longer
-- than the heartbeat timeout ago) are pruned only when there are any.
local function live_conns(user, hb_timeout_ms)
  local ck = key_conns(user)
  local all = redis.call('ZRANGE', ck, 0, -1, 'WITHSCORES')
  local live, stale = {}, false
  for i = 1, #all, 2 do
    if tonumber(all[i + 1]) > NOW - hb_timeout_ms then
      live[#live + 1] = all[i]
    else
      stale = true
    end
  end
  if stale then redis.call('ZREMRANGEBYSCORE', ck, '-inf', NOW - hb_timeout_ms) end
  return live
end
