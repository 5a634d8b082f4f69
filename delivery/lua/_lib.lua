-- Prelude of every Courier script (scripts.py prepends it, after what it generates
-- from the Python tables: the key_* functions (delivery/keys.py), the field constants
-- F_* (message hash), ENTRY_*, DLQ_*, TASK_*, CONN_* (delivery/fields.py), MEMBER_SEP
-- (delivery/members.py), GROUP and the ALLOWED transition table).
-- KEYS[1] is the partition prefix P ("courier:{p3}:"): every key a script touches
-- is built from it, so each script stays inside one Cluster slot.
--
-- Cost notes (each measured with callgrind on Redis 7.0): a redis.call costs a few
-- thousand instructions, a write twice that (it is fed to the AOF), every field and
-- argument more; a Lua number turned into text (`..`, or passed to redis.call) costs
-- as much as a read (glibc's exact %.14g), tonumber() a little less. So the hot paths
-- keep what they read as text, format a number with int() (%d) when they must, and
-- name NOW as text (NOW_S).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local NOW = now_ms()
local function int(x)
  return string.format('%d', x)
end
local NOW_S = int(NOW)
local RANK = {high = 0, normal = 1, low = 2}
local FINAL = {delivered = true, expired = true, cancelled = true}

-- Whether old -> new is in the transition table (ALLOWED: ' queued>sent ... '), looked
-- up once per pair and call.
local CHECKED = {}
local function allowed(old, new)
  old = tostring(old)
  local t = CHECKED[old]
  if not t then
    t = {}
    CHECKED[old] = t
  end
  local ok = t[new]
  if ok == nil then
    ok = string.find(ALLOWED, ' ' .. old .. '>' .. new .. ' ', 1, true) ~= nil
    t[new] = ok
  end
  return ok
end

-- n + 1 for a count Redis holds as text (attempts, events; nil or false: 0), as text,
-- formatted once per value and call.
local NEXT = {}
local function inc(n)
  n = n or '0'
  local s = NEXT[n]
  if not s then
    s = int((tonumber(n) or 0) + 1)
    NEXT[n] = s
  end
  return s
end

-- NOW + ms as text, formatted once per value and call (retention ends, ...).
local LATER = {}
local function later(ms)
  local s = LATER[ms]
  if not s then
    s = int(NOW + ms)
    LATER[ms] = s
  end
  return s
end

-- a <= b for non-negative integers written in decimal without leading zeros (ms times,
-- scores): compared as text, without tonumber().
local function le(a, b)
  return #a < #b or (#a == #b and a <= b)
end

-- The priority streams' keys, built once per call.
local STREAMS = {}
local function stream_of(prio)
  local k = STREAMS[prio]
  if not k then
    k = key_stream(prio)
    STREAMS[prio] = k
  end
  return k
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

-- Writes to users' own keys (the message index) are gathered while a script runs and
-- made once per user when it ends: scripts.py runs the body of every script that uses
-- them as a function, then flush(). A batch that touches a user several times writes
-- the user's index once. Nothing per user is counted per message: the user's figures
-- (counts by status, ack latency) are computed on read from the index
-- (delivery/user_figures.py).
local USERS = {}
local function user_acc(user)
  local u = USERS[user]
  if not u then
    u = {}
    USERS[user] = u
  end
  return u
end

-- How many messages of the partition reached each status, added up while a script
-- runs and written with one HINCRBY per status when it ends (key_reached).
local TOTALS = {}
local function total(status)
  TOTALS[status] = (TOTALS[status] or 0) + 1
end

-- In-flight records to acknowledge when the script ends: stream key -> entry ids
-- (one XACK per stream and call).
local ACKS = {}
local function ack_later(stream, entry)
  local ids = ACKS[stream]
  if not ids then
    ids = {}
    ACKS[stream] = ids
  end
  ids[#ids + 1] = entry
end

-- A sent message's in-flight record: the pending entry `en` of the consumer group,
-- in its priority stream, or in the drained stream when `en` is 'd' .. entry id
-- (a parked message handed to a device, unpark.lua).
local function ack_inflight(prio, en)
  if not en then return end
  if string.byte(en, 1) == 100 then  -- 'd'
    ack_later(key_drained(), string.sub(en, 2))
  else
    ack_later(stream_of(prio), en)
  end
end

-- redis.call(cmd, key, <items>) in chunks that stay far below Lua's stack limit.
local function call_chunked(cmd, key, items, step)
  for i = 1, #items, step do
    redis.call(cmd, key, unpack(items, i, math.min(i + step - 1, #items)))
  end
end

-- XACK of many entries of one stream, in chunks.
local function xack(stream, ids)
  for i = 1, #ids, 1000 do
    redis.call('XACK', stream, GROUP, unpack(ids, i, math.min(i + 999, #ids)))
  end
end

local function flush_user(user, u)
  if u.ids then
    -- enqueue: the index and its lifetime: at least the index ttl from now, so it is
    -- set to ttl + 1/16 whenever less than ttl is left (once per 1/16 of the ttl for a
    -- busy user instead of a PEXPIRE per call). Its cap (oldest dropped) is checked
    -- when an id ends in 0 (ids are random: one enqueue in 16) or the call brought 16
    -- and more: the index may exceed the cap by a few dozen until then.
    local uk = key_user_msgs(user)
    call_chunked('ZADD', uk, u.ids, 1000)
    if (u.check or #u.ids >= 32) and redis.call('ZCARD', uk) > u.cap then
      redis.call('ZREMRANGEBYRANK', uk, 0, -(u.cap + 1))
    end
    if redis.call('PTTL', uk) < u.ttl then
      redis.call('PEXPIRE', uk, int(u.ttl + math.floor(u.ttl / 16)))
    end
  end
  if u.keep_until then
    -- a replayed message lives again: the user's index must outlive it
    local uk = key_user_msgs(user)
    local left = redis.call('PTTL', uk)
    if left == -1 or (left >= 0 and left < u.keep_until - NOW) then
      redis.call('PEXPIRE', uk, int(u.keep_until - NOW))
    end
  end
end

local function flush()
  for user, u in pairs(USERS) do flush_user(user, u) end
  for status, by in pairs(TOTALS) do redis.call('HINCRBY', key_reached(), status, by) end
  for stream, ids in pairs(ACKS) do xack(stream, ids) end
end

-- A message's timeline: e1, e2, ... (F_EVENT .. k) and their count (F_EVENTS), which
-- the caller read with the rest of the hash; each change writes its event in the same
-- HSET. A message queued at once has neither until its second event: its first one,
-- queued at F_CREATED_AT, is implied (no count: 1). An event is JSON {"t": ms, "e": name, "a": attempt, ...detail}, built by
-- concatenation: `detail` is nil, a string of ready JSON members (',"until":123', what
-- the hot paths pass: ids and numbers only, node and connection ids hold no character
-- JSON would escape, see delivery/members.py) or, on the rare paths, a table that cjson
-- encodes. `attempt` and `n` are the text Redis holds (nil or false: 0).
local EVENT_FIELD = {}  -- k -> 'e' .. k, built once per k and call
local function event_field(k)
  local f = EVENT_FIELD[k]
  if not f then
    f = F_EVENT .. k
    EVENT_FIELD[k] = f
  end
  return f
end

local function detail_text(detail)
  if detail == nil or next(detail) == nil then return '' end
  return ',' .. string.sub(cjson.encode(detail), 2, -2)
end

local function event_text(name, attempt, detail)
  if type(detail) ~= 'string' then detail = detail_text(detail) end
  return '{"t":' .. NOW_S .. ',"e":"' .. name .. '","a":' .. (attempt or '0') .. detail .. '}'
end

-- ',"<name>":"<text>"' for event details built by concatenation (text without
-- characters that JSON escapes).
local function jstr(name, text)
  return ',"' .. name .. '":"' .. text .. '"'
end

-- Append one event (and extra field/value pairs) to a message's timeline: one HSET.
local function append(mkey, n, name, attempt, detail, ...)
  local k = inc(n or '1')
  redis.call('HSET', mkey, F_EVENTS, k, event_field(k), event_text(name, attempt, detail), ...)
end

-- Lifecycle events for producers (delivery/events.py): the script that makes a change
-- appends its event to the partition's events stream, so an event exists exactly when
-- its change does. EVENTS_MAX (COURIER_EVENTS_MAX_LEN, generated by scripts.py) caps
-- the stream; 0 (COURIER_EVENTS=false) writes none. `...`: more EV_* field/value pairs.
local function emit(kind, id, user, attempt, ...)
  if EVENTS_MAX == 0 then return end
  redis.call('XADD', key_events(), 'MAXLEN', '~', EVENTS_MAX, '*', EV_TYPE, kind,
    EV_MESSAGE, id, EV_USER, user, EV_AT, NOW_S, EV_ATTEMPT, attempt or '0', ...)
end

-- The event of a status change, for the statuses producers hear of (set_status calls
-- it with the change's detail and event name); key_msg(id) is P .. 'm:' .. id. The
-- detail's fields name what the event says: conn, node and created (delivered),
-- until (parked), reason (dead), by (cancelled); a detail given as text has none.
local MSG_KEY_LEN = #key_msg('')
local function emit_status(mkey, user, new, attempt, detail, evname)
  local d = type(detail) == 'table' and detail or {}
  local id = string.sub(mkey, MSG_KEY_LEN + 1)
  if new == 'delivered' then
    local created = d.created or redis.call('HGET', mkey, F_CREATED_AT)
    emit(new, id, user, attempt, EV_CONN, d.conn or '', EV_NODE, d.node or '', EV_LATENCY,
      int(NOW - (tonumber(created) or NOW)))
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

-- Change status, enforcing the transition table and adding it to the partition's
-- totals, with its timeline event (named after the new status unless `evname` says
-- otherwise) and extra field/value pairs: one HSET. `n` is the message's event count
-- (F_EVENTS). Every status change of every script goes through here (the place where
-- a lifecycle event stream would be written in the same step). The hot paths run it
-- for every message: its lookups are cached per call (inlined: a Lua call costs more
-- than the work here).
local function set_status(mkey, user, old, new, n, attempt, evname, detail, ...)
  local ok = CHECKED[old]
  ok = ok and ok[new]
  if ok == nil then ok = allowed(old, new) end
  if not ok then
    return error('illegal transition ' .. tostring(old) .. ' -> ' .. new)
  end
  if old ~= new then TOTALS[new] = (TOTALS[new] or 0) + 1 end
  n = n or '1'
  local k = NEXT[n] or inc(n)
  local text = detail
  if type(detail) == 'table' then
    text = detail.json or detail_text(detail)
  elseif detail == nil then
    text = ''
  end
  redis.call('HSET', mkey, F_STATUS, new, F_EVENTS, k, EVENT_FIELD[k] or event_field(k),
    '{"t":' .. NOW_S .. ',"e":"' .. (evname or new) .. '","a":' .. (attempt or '0') .. text
    .. '}', ...)
  if EVENTS_MAX ~= 0 and new ~= 'sent' then
    emit_status(mkey, user, new, attempt, detail, evname)
  end
end

-- Remove a message from the waiting structures its status `old` puts it in: a sent
-- message's in-flight record (`prio`, `en` from its hash) is acknowledged; a stale
-- member elsewhere is dropped by the script that finds it (promote, expire, unpark and
-- the reclaim all re-check the status). A queued message's stream entry stays: the
-- dispatch that reads it finds the message moved on and acknowledges it.
-- (The collapse pointer stays until its ttl: an older message with the same key that
-- is still on its way, sent and then retried, is dropped at dispatch.)
local function unlink(id, user, old, prio, en)
  if old == 'sent' then
    ack_inflight(prio, en)
  elseif old == 'scheduled' then
    redis.call('ZREM', key_delayed(), id)
  elseif old == 'parked' then
    redis.call('ZREM', key_parked(user), id)
    redis.call('ZREM', key_parkx(), id)
  end
end

-- A message became final: keep its hash for `retention_ms` more, never longer than it
-- had.
local function retain(mkey, retention_ms)
  if HAS_LT then  -- Redis 7: one command (a key without a ttl counts as infinite)
    redis.call('PEXPIREAT', mkey, later(retention_ms), 'LT')
    return
  end
  local ttl = redis.call('PTTL', mkey)
  if ttl < 0 or ttl > retention_ms then
    redis.call('PEXPIREAT', mkey, int(NOW + retention_ms))
  end
end

-- A final status: set it, unlink, then retain the hash. The timeline event is named
-- after the new status unless `evname` says otherwise; `where` is {prio, en} of a
-- sent message (its in-flight record), else nil.
local function finish(mkey, id, user, old, new, n, attempt, detail, retention_ms, evname,
    where, ...)
  set_status(mkey, user, old, new, n, attempt, evname, detail, ...)
  if where then unlink(id, user, old, where[1], where[2]) else unlink(id, user, old) end
  retain(mkey, retention_ms)
end

-- Attempts used up (or a poison entry): status dead and an entry in the DLQ. `where`
-- as for finish().
local function bury(mkey, id, user, old, n, attempt, reason, dlq_max, dead_keep_ms, where)
  if not allowed(old, 'dead') then  -- before anything is written
    return error('illegal transition ' .. tostring(old) .. ' -> dead')
  end
  if where then unlink(id, user, old, where[1], where[2]) else unlink(id, user, old) end
  local entry = redis.call('XADD', key_dlq(), 'MAXLEN', '~', dlq_max, '*',
    DLQ_ID, id, DLQ_USER, user, DLQ_REASON, reason, DLQ_ATTEMPTS, attempt or '0')
  set_status(mkey, user, old, 'dead', n, attempt, nil,
    {json = jstr('reason', reason), reason = reason}, F_DEAD_LETTER, entry, F_LAST_ERROR, reason)
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
  return int((RANK[prio] * 549755813888 + (at - PARK_EPOCH_MS)) * 4096 + n)
end

local function park(mkey, id, user, old, n, prio, created, expires, attempt, park_ttl_ms,
    entry)
  local pk = key_parked(user)
  redis.call('ZADD', pk, park_score(prio, created, entry), id)
  local until_s = int(math.min(expires, NOW + park_ttl_ms))
  redis.call('ZADD', key_parkx(), until_s, id)
  local ttl = redis.call('PTTL', pk)
  if ttl < park_ttl_ms then redis.call('PEXPIRE', pk, park_ttl_ms) end
  set_status(mkey, user, old, 'parked', n, attempt, nil,
    {json = ',"until":' .. until_s, ['until'] = until_s})
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
  local all = redis.call('ZRANGE', ck, '0', '-1', 'WITHSCORES')
  local live, stale = {}, false
  local cutoff = later(-hb_timeout_ms)
  for i = 1, #all, 2 do
    if le(all[i + 1], cutoff) then stale = true else live[#live + 1] = all[i] end
  end
  if stale then redis.call('ZREMRANGEBYSCORE', ck, '-inf', cutoff) end
  return live
end
