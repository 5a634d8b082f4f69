-- promote: move messages whose due time has come from the delayed set to their
-- priority stream (or expire them).
-- KEYS[1] partition prefix (P)
-- ARGV: 1 limit, 2 retention_ms
-- Returns {moved, next due ms or -1}. (delivery/calls.py: Promote)
local limit, retention = tonumber(ARGV[1]), tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', key_delayed(), '-inf', NOW_S, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  redis.call('ZREM', key_delayed(), id)
  local mkey = key_msg(id)
  local m = redis.call('HMGET', mkey, F_STATUS, F_USER, F_PRIORITY, F_EXPIRES_AT, F_ATTEMPTS,
    F_EVENTS)
  local status, user, prio, expires, attempt, n = m[1], m[2], m[3], m[4], m[5], m[6]
  if status == 'scheduled' then
    if NOW >= tonumber(expires) then
      finish(mkey, id, user, 'scheduled', 'expired', n, attempt, nil, retention)
    else
      requeue(mkey, id, user, prio)
      set_status(mkey, user, 'scheduled', 'queued', n, attempt, nil, ',"from":"scheduled"')
    end
  end
end
local nxt = redis.call('ZRANGE', key_delayed(), 0, 0, 'WITHSCORES')
return {#ids, nxt[2] or -1}
