-- ack_one(...): one acknowledged id (the loop body of ack.lua), shared with
-- ack_many.lua. Returns the code documented in ack.lua.
local function ack_one(user, conn, node, retention, samples, id)
  local mkey = key_msg(id)
  local m = redis.call('HMGET', mkey, 's', 'u', 'a', 'ca', 'p')
  if not m[1] then return 'unknown' end
  if m[2] ~= user then return 'forbidden' end
  if m[1] == 'delivered' then return 'duplicate' end
  if FINAL[m[1]] or m[1] == 'dead' then return 'final' end
  local latency = NOW - tonumber(m[4])
  redis.call('HSET', mkey, 'da', NOW)
  finish(mkey, id, user, m[1], 'delivered', m[3], {conn = conn, node = node}, retention, 'acked')
  local sk = key_user_stats(user)
  redis.call('HINCRBY', sk, 'ack_n', 1)
  redis.call('HINCRBY', sk, 'ack_ms', latency)
  local lk = key_user_latency(user)
  redis.call('LPUSH', lk, latency)
  redis.call('LTRIM', lk, 0, samples - 1)
  redis.call('PEXPIRE', lk, redis.call('PTTL', sk))
  return 'ok|' .. m[5] .. '|' .. latency
end
