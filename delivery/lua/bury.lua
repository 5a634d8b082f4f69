-- bury: a stream entry was delivered to consumers too often without being
-- dispatched (a poison entry): acknowledge it and dead-letter its message.
-- KEYS[1] partition prefix (P)
-- ARGV: 1 entry id, 2 message id, 3 user, 4 priority, 5 group, 6 reason,
--   7 dlq max length, 8 dead keep ms
-- Returns the message's status afterwards ('gone' when its hash is).
-- (delivery/calls.py: Bury)
local entry, id, user, prio, group = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local reason, dlq_max, dead_keep = ARGV[6], ARGV[7], tonumber(ARGV[8])
local stream = key_stream(prio)
refuse_when_full()  -- an entry that failed while Redis was full is no poison
redis.call('XACK', stream, group, entry)
redis.call('XDEL', stream, entry)
local mkey = key_msg(id)
local m = redis.call('HMGET', mkey, F_STATUS, F_ATTEMPTS, F_EVENTS)
local status, attempt, n = m[1], m[2], m[3]
if status ~= 'queued' then return status or 'gone' end
bury(mkey, id, user, 'queued', n, attempt, reason, dlq_max, dead_keep)
return 'dead'
