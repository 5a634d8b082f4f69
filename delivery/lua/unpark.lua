-- unpark: a device of the user connected; hand it the next parked messages,
-- highest priority first, oldest first (status sent, ack deadline set).
-- KEYS[1] partition prefix
-- ARGV: 1 user, 2 "node|conn", 3 limit, 4 ack_timeout_ms, 5 retention_ms
-- Returns {remaining, then per message: id, attempt, priority, payload, created,
-- collapse, topic, reply}.
local user, target = ARGV[1], ARGV[2]
local pk = key_parked(user)
local ids = redis.call('ZRANGE', pk, 0, tonumber(ARGV[3]) - 1)
local out = {0}
for _, id in ipairs(ids) do
  redis.call('ZREM', pk, id)
  redis.call('ZREM', key_parkx(), id)
  local mkey = key_msg(id)
  local m = redis.call('HMGET', mkey, 's', 'a', 'p', 'pl', 'ca', 'ck', 'tp', 'rr', 'ea', 'n')
  if m[1] == 'parked' then
    local attempt = tonumber(m[2])
    if NOW >= tonumber(m[9]) then
      finish(mkey, id, user, 'parked', 'expired', m[10], attempt, nil, tonumber(ARGV[5]))
    else
      attempt = attempt + 1
      set_status(mkey, user, 'parked', 'sent', m[10], attempt, nil,
        {to = {target}, from = 'parked'}, 'a', attempt)
      redis.call('ZADD', key_inflight(), NOW + tonumber(ARGV[4]), id)
      local row = {id, attempt, m[3], m[4], m[5], m[6] or '', m[7] or '', m[8] or '0'}
      for _, v in ipairs(row) do out[#out + 1] = v end
    end
  end
end
out[1] = redis.call('ZCARD', pk)
return out
