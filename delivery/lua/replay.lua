-- replay: an operator gives a dead message a fresh cycle of attempts and a fresh
-- ttl; its DLQ entry is removed. Replaying a message that is not dead changes nothing.
-- KEYS[1] partition prefix
-- ARGV: 1 message id, 2 retention_ms, 3 operator
-- Returns 'queued', 'unknown', or the current status when it is not dead.
local id = ARGV[1]
local mkey = key_msg(id)
local m = redis.call('HMGET', mkey, 's', 'u', 'p', 'tl', 'dl', 'a', 'n')
if not m[1] then return 'unknown' end
if m[1] ~= 'dead' then return m[1] end
if m[5] then redis.call('XDEL', key_dlq(), m[5]) end
local expires = NOW + tonumber(m[4])
redis.call('HDEL', mkey, 'dl')
redis.call('PEXPIREAT', mkey, expires + tonumber(ARGV[2]))
set_status(mkey, m[2], 'dead', 'queued', m[7], m[6], 'replayed', {by = ARGV[3]}, 'a', 0,
  'ea', expires)
user_acc(m[2]).keep_until = expires + tonumber(ARGV[2])
redis.call('XADD', key_stream(m[3]), '*', 'm', id, 'u', m[2])
return 'queued'
