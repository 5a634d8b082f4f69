-- disconnect: a connection closed. When it was the user's last live connection,
-- its unacknowledged messages go straight back to their stream (to be parked or
-- sent to a device that connects) instead of waiting for the ack timeout: their
-- in-flight records are acknowledged and each gets a new entry.
-- KEYS[1] partition prefix (P)
-- ARGV: 1 user, 2 connection id, 3 node id, 4 heartbeat_timeout_ms, 5 reason,
--   6.. ids of messages sent on this connection and not acknowledged
-- Returns the number of messages handed back. (delivery/presence.py: Disconnect)
local user, conn, node = ARGV[1], ARGV[2], ARGV[3]
local hb_timeout, reason = tonumber(ARGV[4]), ARGV[5]
local FIRST_ID = 6
redis.call('ZREM', key_conns(user), conn_member(node, conn))
redis.call('DEL', key_conn(conn))
if #live_conns(user, hb_timeout) > 0 then return 0 end
local handed = 0
for i = FIRST_ID, #ARGV do
  local id = ARGV[i]
  local mkey = key_msg(id)
  local m = redis.call('HMGET', mkey, F_STATUS, F_PRIORITY, F_ATTEMPTS, F_EVENTS, F_ENTRY)
  local status, prio, attempt, n = m[1], m[2], m[3], m[4]
  if status == 'sent' then
    ack_inflight(prio, m[5])
    requeue(mkey, id, user, prio)
    set_status(mkey, user, 'sent', 'queued', n, attempt, 'handed_back',
      {conn = conn, reason = reason})
    handed = handed + 1
  end
end
settle({})
return handed
