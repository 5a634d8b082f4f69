-- purge: remove a dead message's DLQ entry (the message stays dead).
-- KEYS[1] partition prefix
-- ARGV: 1 message id
-- Returns 'purged', 'unknown', or the status when the message is not dead.
local mkey = key_msg(ARGV[1])
local m = redis.call('HMGET', mkey, 's', 'dl', 'a', 'n')
if not m[1] then return 'unknown' end
if m[1] ~= 'dead' or not m[2] then return m[1] end
redis.call('XDEL', key_dlq(), m[2])
redis.call('HDEL', mkey, 'dl')
append(mkey, m[4], 'purged', m[3])
return 'purged'
