-- due: messages whose ack deadline has passed (read only; `retry` re-checks).
-- KEYS[1] partition prefix (P)
-- ARGV: 1 limit
-- Returns a flat list: id, attempts made, max attempts, ... (delivery/calls.py: Due)
local limit = tonumber(ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', key_inflight(), '-inf', NOW, 'LIMIT', 0, limit)
local out = {}
for _, id in ipairs(ids) do
  local m = redis.call('HMGET', key_msg(id), F_ATTEMPTS, F_MAX_ATTEMPTS)
  out[#out + 1] = id
  out[#out + 1] = m[1] or '0'
  out[#out + 1] = m[2] or '1'
end
return out
