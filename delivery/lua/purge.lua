-- purge: remove a dead message's DLQ entry (the message stays dead).
-- KEYS[1] partition prefix (P)
-- ARGV: 1 message id
-- Returns 'purged', 'unknown', or the status when the message is not dead (or is dead
-- without an entry). (delivery/calls.py: Purge, PurgeCode)
local id = ARGV[1]
local mkey = key_msg(id)
local m = redis.call('HMGET', mkey, F_STATUS, F_DEAD_LETTER, F_ATTEMPTS, F_EVENTS)
local status, entry, attempt, n = m[1], m[2], m[3], m[4]
if not status then return 'unknown' end
if status ~= 'dead' or not entry then return status end
redis.call('XDEL', key_dlq(), entry)
redis.call('HDEL', mkey, F_DEAD_LETTER)
append(mkey, n, 'purged', attempt)
return 'purged'
