-- escalate: messages whose escalation time came and that no device acked yet get an
-- `undelivered` event, once: in their timeline and in the events stream. Nothing else
-- changes: the message stays deliverable. A message that was acked, or ended
-- otherwise (expired, dead, cancelled: each with its own event), is only dropped from
-- the set.
-- KEYS[1] partition prefix (P)
-- ARGV: 1 limit
-- Returns the number escalated. (delivery/calls.py: Escalate)
local limit = tonumber(ARGV[1])
local WAITING = {queued = true, scheduled = true, sent = true, parked = true}
local ids = redis.call('ZRANGEBYSCORE', key_escalate(), '-inf', NOW, 'LIMIT', 0, limit)
local fired = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', key_escalate(), id)
  local mkey = key_msg(id)
  local m = redis.call('HMGET', mkey, F_STATUS, F_USER, F_ATTEMPTS, F_EVENTS,
    F_ESCALATE_AFTER, F_ESCALATED_AT)
  local status, user, attempt, n, after, done = m[1], m[2], m[3], m[4], m[5], m[6]
  if WAITING[status] and not done then
    append(mkey, n, 'undelivered', attempt, {after = tonumber(after), status = status},
      F_ESCALATED_AT, NOW)
    emit('undelivered', id, user, attempt, EV_STATUS, status, EV_AFTER, after or '0')
    fired = fired + 1
  end
end
return fired
