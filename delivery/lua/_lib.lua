-- Prelude of every Courier script (scripts.py prepends it, after the generated
-- key_* functions and the ALLOWED transition table).
-- KEYS[1] is the partition prefix P ("courier:{p3}:"): every key a script touches
-- is built from it, so each script stays inside one Cluster slot.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local NOW = now_ms()
local RANK = {high = 0, normal = 1, low = 2}
local FINAL = {delivered = true, expired = true, cancelled = true}

-- Append one event to a message's timeline (fields e1, e2, ... of its hash).
local function event(mkey, name, attempt, detail)
  local n = redis.call('HINCRBY', mkey, 'n', 1)
  local e = detail or {}
  e['t'] = NOW
  e['e'] = name
  e['a'] = tonumber(attempt) or 0
  redis.call('HSET', mkey, 'e' .. n, cjson.encode(e))
end

-- Change status, enforcing the transition table and keeping the user's counters.
local function set_status(mkey, user, old, new)
  if not (ALLOWED[old] and ALLOWED[old][new]) then
    return error('illegal transition ' .. tostring(old) .. ' -> ' .. new)
  end
  redis.call('HSET', mkey, 's', new)
  local sk = key_user_stats(user)
  if old ~= new then
    redis.call('HINCRBY', sk, old, -1)
    redis.call('HINCRBY', sk, new, 1)
  end
end

-- Remove a message from every waiting structure of its partition.
-- (The collapse pointer stays until its ttl: an older message with the same key that
-- is still on its way, sent and then retried, is dropped at dispatch.)
local function unlink(id, user)
  redis.call('ZREM', key_inflight(), id)
  redis.call('ZREM', key_delayed(), id)
  redis.call('ZREM', key_parked(user), id)
  redis.call('ZREM', key_parkx(), id)
end

-- A final status: unlink, then keep the hash for `retention_ms` more. The timeline
-- event is named after the new status unless `evname` says otherwise.
local function finish(mkey, id, user, old, new, attempt, detail, retention_ms, evname)
  set_status(mkey, user, old, new)
  event(mkey, evname or new, attempt, detail)
  unlink(id, user)
  local keep = NOW + retention_ms
  local ttl = redis.call('PTTL', mkey)
  if ttl < 0 or NOW + ttl > keep then redis.call('PEXPIREAT', mkey, keep) end
end

-- Attempts used up (or a poison entry): status dead and an entry in the DLQ.
local function bury(mkey, id, user, old, attempt, reason, dlq_max, dead_keep_ms)
  set_status(mkey, user, old, 'dead')
  unlink(id, user)
  local entry = redis.call('XADD', key_dlq(), 'MAXLEN', '~', dlq_max, '*',
    'id', id, 'u', user, 'reason', reason, 'attempts', attempt)
  redis.call('HSET', mkey, 'dl', entry, 'le', reason)
  event(mkey, 'dead', attempt, {reason = reason})
  local ttl = redis.call('PTTL', mkey)
  if ttl >= 0 and ttl < dead_keep_ms then redis.call('PEXPIRE', mkey, dead_keep_ms) end
end

-- Park for an offline user: highest priority first, oldest first. The score is exact
-- (< 2^53): priority, then creation ms since 2024 (good until 2041), then the stream
-- entry's sequence number (messages enqueued in one millisecond keep their order).
local PARK_EPOCH_MS = 1704067200000
local function park_score(prio, created, entry)
  local seq = tonumber(string.match(entry or '', '%-(%d+)$') or '0')
  return (RANK[prio] * 549755813888 + (created - PARK_EPOCH_MS)) * 4096 + math.min(seq, 4095)
end

local function park(mkey, id, user, prio, created, expires, attempt, park_ttl_ms, entry)
  local pk = key_parked(user)
  redis.call('ZADD', pk, park_score(prio, created, entry), id)
  local until_ms = math.min(expires, NOW + park_ttl_ms)
  redis.call('ZADD', key_parkx(), until_ms, id)
  local ttl = redis.call('PTTL', pk)
  if ttl < park_ttl_ms then redis.call('PEXPIRE', pk, park_ttl_ms) end
  event(mkey, 'parked', attempt, {['until'] = until_ms})
end

-- Live connections of a user ("node|conn"), pruning the stale ones.
local function live_conns(user, hb_timeout_ms)
  local ck = key_conns(user)
  redis.call('ZREMRANGEBYSCORE', ck, '-inf', NOW - hb_timeout_ms)
  return redis.call('ZRANGE', ck, 0, -1)
end
