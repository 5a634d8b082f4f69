-- The ack event's detail naming the connection and node (once per frame): its JSON
-- members for the timeline, and for the lifecycle event the connection, node and the
-- acked message's creation time (set per message by ack_one).
local function acked_by(conn, node)
  return {json = jstr('conn', conn) .. jstr('node', node), conn = conn, node = node}
end

-- ack_one(...): one acknowledged id (the loop body of ack.lua), shared with
-- ack_many.lua; `by` is acked_by(). A sent message's in-flight record (its pending
-- stream entry) is acknowledged when the script ends, with the others of the call.
-- Returns the code documented in ack.lua.
local function ack_one(user, by, retention, id)
  local mkey = key_msg(id)
  local m = redis.call('HMGET', mkey, F_STATUS, F_USER, F_ATTEMPTS, F_CREATED_AT, F_PRIORITY,
    F_EVENTS, F_ENTRY)
  local status, owner, attempt, created, prio, n = m[1], m[2], m[3], m[4], m[5], m[6]
  if not status then return 'unknown' end
  if owner ~= user then return 'forbidden' end
  if status == 'delivered' then return 'duplicate' end
  if FINAL[status] then return 'final' end
  by.created = created
  if status == 'sent' then  -- the common case first: the record acked with the call's
    set_status(mkey, user, 'sent', 'delivered', n, attempt, 'acked', by, F_DELIVERED_AT, NOW_S)
    local en = m[7]
    if string.byte(en, 1) == 100 then  -- 'd': a drained message's record
      ack_later(key_drained(), string.sub(en, 2))
    else
      ack_later(STREAMS[prio] or stream_of(prio), en)
    end
    if HAS_LT then
      redis.call('PEXPIREAT', mkey, LATER[retention] or later(retention), 'LT')
    else
      retain(mkey, retention)
    end
  elseif status == 'dead' then
    -- the device got an attempt after all (its node stalled, Redis was full): the
    -- message is delivered, and leaves the dead-letter stream so that no replay
    -- delivers it twice
    local entry = redis.call('HGET', mkey, F_DEAD_LETTER)
    if entry then
      redis.call('XDEL', key_dlq(), entry)
      redis.call('HDEL', mkey, F_DEAD_LETTER)
    end
    local late = {json = by.json .. ',"late":true', conn = by.conn, node = by.node,
      created = created}
    finish(mkey, id, user, status, 'delivered', n, attempt, late, retention, 'acked', nil,
      F_DELIVERED_AT, NOW_S)
  else
    finish(mkey, id, user, status, 'delivered', n, attempt, by, retention, 'acked', nil,
      F_DELIVERED_AT, NOW_S)
  end
  return 'ok|' .. prio .. '|' .. created
end
