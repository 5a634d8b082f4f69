-- reply: the user answers a message that had reply_requested. The reply is kept in
-- the message, recorded in its timeline and published to whoever awaits it; it
-- also counts as the message's acknowledgement. Its events: `replied`, then `delivered`.
-- KEYS[1] partition prefix (P)
-- ARGV: 1 user, 2 connection id, 3 message id, 4 reply (JSON), 5 reply channel,
--   6 retention_ms
-- Returns 'ok', 'unknown', 'forbidden', 'not_requested' or 'duplicate'.
-- (delivery/calls.py: Reply, ReplyCode)
local user, conn, id, data = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local channel, retention = ARGV[5], tonumber(ARGV[6])
local mkey = key_msg(id)
local m = redis.call('HMGET', mkey, F_STATUS, F_USER, F_REPLY_REQUESTED, F_REPLY, F_ATTEMPTS,
  F_EVENTS, F_PRIORITY, F_ENTRY)
local status, owner, requested, replied, attempt, n = m[1], m[2], m[3], m[4], m[5], m[6]
if not status then return 'unknown' end
if owner ~= user then return 'forbidden' end
if requested ~= '1' then return 'not_requested' end
if replied then return 'duplicate' end
append(mkey, n, 'replied', attempt, {conn = conn}, F_REPLY, data)
emit('replied', id, user, attempt, EV_CONN, conn, EV_REPLY, data)
if not FINAL[status] and status ~= 'dead' then
  finish(mkey, id, user, status, 'delivered', inc(n or '1'), attempt,
    {conn = conn, via = 'reply'}, retention, 'acked', {m[7], m[8]}, F_DELIVERED_AT, NOW_S)
end
redis.call('PUBLISH', channel, data)
return 'ok'
