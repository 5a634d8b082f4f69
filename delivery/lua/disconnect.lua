-- disconnect: a connection closed. When it was the user's last live connection,
-- its unacknowledged messages go straight back to their stream (to be parked or
-- sent to a device that connects) instead of waiting for the ack timeout.
-- KEYS[1] partition prefix
-- ARGV: 1 user, 2 connection id, 3 node id, 4 heartbeat_timeout_ms, 5 reason,
--   6.. ids of messages sent on this connection and not acknowledged
-- Returns the number of messages handed back.
local user, conn, node = ARGV[1], ARGV[2], ARGV[3]
redis.call('ZREM', key_conns(user), node .. '|' .. conn)
redis.call('DEL', key_conn(conn))
if #live_conns(user, tonumber(ARGV[4])) > 0 then return 0 end
local n = 0
for i = 6, #ARGV do
  local id = ARGV[i]
  local mkey = key_msg(id)
  local m = redis.call('HMGET', mkey, 's', 'p', 'a', 'n')
  if m[1] == 'sent' then
    redis.call('ZREM', key_inflight(), id)
    set_status(mkey, user, 'sent', 'queued', m[4], m[3], 'handed_back',
      {conn = conn, reason = ARGV[5]})
    redis.call('XADD', key_stream(m[2]), '*', 'm', id, 'u', user)
    n = n + 1
  end
end
return n
