-- connect: register a live connection of a user (presence), unless the user already
-- has as many live connections (across the deployment) as allowed.
-- KEYS[1] partition prefix (P)
-- ARGV: 1 user, 2 connection id, 3 node id, 4 presence ttl ms, 5 the user's live
--   connections allowed (0: any number), 6 heartbeat timeout ms (a connection seen
--   within it is live), then field/value pairs describing the connection
--   (CONN_DEVICE, CONN_ADDRESS ...)
-- Returns the server time in ms, or 'full' (nothing written). (delivery/presence.py:
-- Connect)
local user, conn, node, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local cap, live_ms = tonumber(ARGV[5]), tonumber(ARGV[6])
local FIRST_DETAIL = 7
local zk = key_conns(user)
local member = conn_member(node, conn)
if cap > 0 and not redis.call('ZSCORE', zk, member) then
  if redis.call('ZCOUNT', zk, '(' .. (NOW - live_ms), '+inf') >= cap then return 'full' end
end
redis.call('ZADD', zk, NOW, member)
redis.call('PEXPIRE', zk, ttl)
local ck = key_conn(conn)
redis.call('HSET', ck, CONN_USER, user, CONN_NODE, node, CONN_CONNECTED_AT, NOW,
  CONN_LAST_SEEN, NOW)
for i = FIRST_DETAIL, #ARGV, 2 do redis.call('HSET', ck, ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', ck, ttl)
return NOW
