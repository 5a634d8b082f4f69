-- connect: register a live connection of a user (presence).
-- KEYS[1] partition prefix
-- ARGV: 1 user, 2 connection id, 3 node id, 4 presence ttl ms, then field/value
--   pairs describing the connection (device, address, ...)
-- Returns the server time in ms.
local user, conn, node, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local zk = key_conns(user)
redis.call('ZADD', zk, NOW, node .. '|' .. conn)
redis.call('PEXPIRE', zk, ttl)
local ck = key_conn(conn)
redis.call('HSET', ck, 'user', user, 'node', node, 'connected_at', NOW, 'last_seen', NOW)
for i = 5, #ARGV, 2 do redis.call('HSET', ck, ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', ck, ttl)
return NOW
