-- expire: parked messages whose park time (or ttl) ran out become expired.
-- KEYS[1] partition prefix (P)
-- ARGV: 1 limit, 2 retention_ms
-- Returns the number expired. (delivery/calls.py: Expire)
local limit, retention = tonumber(ARGV[1]), tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', key_parkx(), '-inf', NOW_S, 'LIMIT', 0, limit)
local expired = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', key_parkx(), id)
  local mkey = key_msg(id)
  local m = redis.call('HMGET', mkey, F_STATUS, F_USER, F_ATTEMPTS, F_EVENTS)
  local status, user, attempt, n = m[1], m[2], m[3], m[4]
  if status == 'parked' then
    finish(mkey, id, user, 'parked', 'expired', n, attempt, nil, retention)
    expired = expired + 1
  end
end
return expired
