-- ack: a user's device acknowledged messages.
-- KEYS[1] partition prefix
-- ARGV: 1 user, 2 connection id, 3 node id, 4 retention_ms, 5 latency samples kept,
--   6.. message ids
-- Returns one code per id: 'ok|<priority>|<enqueue to ack ms>', 'duplicate' (already delivered), 'final' (expired,
-- dead or cancelled: nothing changes), 'forbidden' (another user's) or 'unknown'.
local user, conn, node = ARGV[1], ARGV[2], ARGV[3]
local retention, samples = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {}
for i = 6, #ARGV do
  local id = ARGV[i]
  local mkey = key_msg(id)
  local m = redis.call('HMGET', mkey, 's', 'u', 'a', 'ca', 'p')
  if not m[1] then out[#out + 1] = 'unknown'
  elseif m[2] ~= user then out[#out + 1] = 'forbidden'
  elseif m[1] == 'delivered' then out[#out + 1] = 'duplicate'
  elseif FINAL[m[1]] or m[1] == 'dead' then out[#out + 1] = 'final'
  else
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
    out[#out + 1] = 'ok|' .. m[5] .. '|' .. latency
  end
end
return out
