-- expire: parked messages whose park time (or ttl) ran out become expired.
-- KEYS[1] partition prefix
-- ARGV: 1 limit, 2 retention_ms
-- Returns the number expired.
local ids = redis.call('ZRANGEBYSCORE', key_parkx(), '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[1]))
local n = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', key_parkx(), id)
  local mkey = key_msg(id)
  local m = redis.call('HMGET', mkey, 's', 'u', 'a', 'n')
  if m[1] == 'parked' then
    finish(mkey, id, m[2], 'parked', 'expired', m[4], m[3], nil, tonumber(ARGV[2]))
    n = n + 1
  end
end
return n
