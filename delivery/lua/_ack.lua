-- ack_one(...): one acknowledged id (the loop body of ack.lua), shared with
-- ack_many.lua. Returns the code documented in ack.lua.
local function ack_one(user, conn, node, retention, samples, id)
  local mkey = key_msg(id)
  local m = redis.call('HMGET', mkey, F_STATUS, F_USER, F_ATTEMPTS, F_CREATED_AT, F_PRIORITY,
    F_EVENTS, F_DEAD_LETTER)
  local status, owner, attempt, created, prio, n = m[1], m[2], m[3], m[4], m[5], m[6]
  if not status then return 'unknown' end
  if owner ~= user then return 'forbidden' end
  if status == 'delivered' then return 'duplicate' end
  if FINAL[status] then return 'final' end
  local latency = NOW - tonumber(created)
  if status == 'dead' then
    -- the device got an attempt after all (its node stalled, Redis was full): the
    -- message is delivered, and leaves the dead-letter stream so that no replay
    -- delivers it twice
    if m[7] then
      redis.call('XDEL', key_dlq(), m[7])
      redis.call('HDEL', mkey, F_DEAD_LETTER)
    end
    finish(mkey, id, user, status, 'delivered', n, attempt,
      {conn = conn, node = node, late = true}, retention, 'acked', F_DELIVERED_AT, NOW)
  elseif status == 'sent' then
    -- a sent message is only in inflight: removed with the others of this call
    set_status(mkey, user, 'sent', 'delivered', n, attempt, 'acked',
      {conn = conn, node = node}, F_DELIVERED_AT, NOW)
    INFLIGHT_DEL[#INFLIGHT_DEL + 1] = id
    retain(mkey, retention)
  else
    finish(mkey, id, user, status, 'delivered', n, attempt, {conn = conn, node = node},
      retention, 'acked', F_DELIVERED_AT, NOW)
  end
  count(user, STAT_ACK_N, 1)
  count(user, STAT_ACK_MS, latency)
  local u = user_acc(user)
  u.lat = u.lat or {}
  u.lat[#u.lat + 1] = latency
  u.samples = samples
  return 'ok|' .. prio .. '|' .. latency
end
