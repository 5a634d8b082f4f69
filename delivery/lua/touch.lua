-- touch: a node refreshes the presence of its live connections in this partition.
-- KEYS[1] partition prefix (P)
-- ARGV: 1 presence ttl ms, then 3 per connection: user, connection id, node id
-- Returns the ids of connections that presence had lost (pruned as stale, e.g. after a
-- Redis outage longer than the heartbeat timeout): messages may have been parked
-- for them meanwhile, so the node drains those connections again.
-- (delivery/presence.py: Touch)
local ttl = tonumber(ARGV[1])
local FIRST_CONN, PER_CONN = 2, 3
local restored = {}
for i = FIRST_CONN, #ARGV, PER_CONN do
  local user, conn, node = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local zk = key_conns(user)
  if redis.call('ZADD', zk, NOW, conn_member(node, conn)) == 1 then
    restored[#restored + 1] = conn
  end
  redis.call('PEXPIRE', zk, ttl)
  local ck = key_conn(conn)
  if redis.call('EXISTS', ck) == 1 then
    redis.call('HSET', ck, CONN_LAST_SEEN, NOW)
    redis.call('PEXPIRE', ck, ttl)
  end
end
return restored
