-- bury: a stream entry was delivered to consumers too often without being
-- dispatched (a poison entry): acknowledge it and dead-letter its message.
-- KEYS[1] partition prefix
-- ARGV: 1 entry id, 2 message id, 3 user, 4 priority, 5 group, 6 reason,
--   7 dlq max length, 8 dead keep ms
-- Returns the message's status afterwards.
local stream = key_stream(ARGV[4])
redis.call('XACK', stream, ARGV[5], ARGV[1])
redis.call('XDEL', stream, ARGV[1])
local mkey = key_msg(ARGV[2])
local m = redis.call('HMGET', mkey, 's', 'a', 'n')
if m[1] ~= 'queued' then return m[1] or 'gone' end
bury(mkey, ARGV[2], ARGV[3], 'queued', m[3], m[2], ARGV[6], ARGV[7], tonumber(ARGV[8]))
return 'dead'
