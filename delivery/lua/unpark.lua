-- unpark: a device of the user connected; hand it the next parked messages,
-- highest priority first, oldest first (status sent, ack deadline set).
-- KEYS[1] partition prefix (P)
-- ARGV: 1 user, 2 the connection's conn_member ("node|conn"), 3 limit,
--   4 ack_timeout_ms, 5 retention_ms
-- Returns {remaining, then 8 per message: id, attempt, priority, payload, created,
-- collapse, topic, reply}. (delivery/calls.py: Unpark)
local user, target, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local ack_timeout, retention = tonumber(ARGV[4]), tonumber(ARGV[5])
local pk = key_parked(user)
local ids = redis.call('ZRANGE', pk, 0, limit - 1)
local out = {0}
for _, id in ipairs(ids) do
  redis.call('ZREM', pk, id)
  redis.call('ZREM', key_parkx(), id)
  local mkey = key_msg(id)
  local m = redis.call('HMGET', mkey, F_STATUS, F_ATTEMPTS, F_PRIORITY, F_PAYLOAD,
    F_CREATED_AT, F_COLLAPSE_KEY, F_TOPIC, F_REPLY_REQUESTED, F_EXPIRES_AT, F_EVENTS)
  local status, attempt, n = m[1], tonumber(m[2]), m[10]
  if status == 'parked' then
    if NOW >= tonumber(m[9]) then
      finish(mkey, id, user, 'parked', 'expired', n, attempt, nil, retention)
    else
      attempt = attempt + 1
      set_status(mkey, user, 'parked', 'sent', n, attempt, nil,
        {to = {target}, from = 'parked'}, F_ATTEMPTS, attempt)
      redis.call('ZADD', key_inflight(), NOW + ack_timeout, id)
      local row = {id, attempt, m[3], m[4], m[5], m[6] or '', m[7] or '', m[8] or '0'}
      for _, v in ipairs(row) do out[#out + 1] = v end
    end
  end
end
out[1] = redis.call('ZCARD', pk)
return out
