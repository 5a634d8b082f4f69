-- replay: an operator gives a dead message a fresh cycle of attempts and a fresh
-- ttl; its DLQ entry is removed. Replaying a message that is not dead changes nothing.
-- KEYS[1] partition prefix (P)
-- ARGV: 1 message id, 2 retention_ms, 3 operator
-- Returns 'replayed' (it is queued again), 'unknown', or the current status when it
-- is not dead. (delivery/calls.py: Replay, ReplayCode)
local id, retention, by = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local mkey = key_msg(id)
local m = redis.call('HMGET', mkey, F_STATUS, F_USER, F_PRIORITY, F_TTL, F_DEAD_LETTER,
  F_ATTEMPTS, F_EVENTS, F_CREATED_AT, F_EXPIRES_AT)
local status, user, prio, ttl, entry, attempt, n = m[1], m[2], m[3], m[4], m[5], m[6], m[7]
if not status then return 'unknown' end
if status ~= 'dead' then return status end
if entry then redis.call('XDEL', key_dlq(), entry) end
-- the ttl it was given (stored by the first replay; before: expires - created)
ttl = ttl or int(tonumber(m[9]) - tonumber(m[8]))
local expires = NOW + tonumber(ttl)
redis.call('HDEL', mkey, F_DEAD_LETTER)
redis.call('PEXPIREAT', mkey, int(expires + retention))
set_status(mkey, user, 'dead', 'queued', n, attempt, 'replayed', {by = by}, F_ATTEMPTS, '0',
  F_EXPIRES_AT, int(expires), F_TTL, ttl)
user_acc(user).keep_until = expires + retention
requeue(mkey, id, user, prio)
return 'replayed'
