-- connect: register a live connection of a user (presence).
-- KEYS[1] partition prefix (P)
-- ARGV: 1 user, 2 connection id, 3 node id, 4 presence ttl ms, then field/value
--   pairs describing the connection (CONN_DEVICE, CONN_ADDRESS ...)
-- Returns the server time in ms. (delivery/presence.py: Connect)
local user, conn, node, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local FIRST_DETAIL = 5
local zk = key_conns(user)
redis.call('ZADD', zk, NOW, conn_member(node, conn))
redis.call('PEXPIRE', zk, ttl)
local ck = key_conn(conn)
redis.call('HSET', ck, CONN_USER, user, CONN_NODE, node, CONN_CONNECTED_AT, NOW,
  CONN_LAST_SEEN, NOW)
for i = FIRST_DETAIL, #ARGV, 2 do redis.call('HSET', ck, ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', ck, ttl)
return NOW
