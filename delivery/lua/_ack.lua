-- ack_one(...): one acknowledged id (the loop body of ack.lua), shared with
-- ack_many.lua. Returns the code documented in ack.lua.
local function ack_one(user, conn, node, retention, samples, id)
  local mkey = key_msg(id)
  local m = redis.call('HMGET', mkey, 's', 'u', 'a', 'ca', 'p', 'n')
  if not m[1] then return 'unknown' end
  if m[2] ~= user then return 'forbidden' end
  if m[1] == 'delivered' then return 'duplicate' end
  if FINAL[m[1]] or m[1] == 'dead' then return 'final' end
  local latency = NOW - tonumber(m[4])
  if m[1] == 'sent' then
    -- a sent message is only in inflight: removed with the others of this call
    set_status(mkey, user, 'sent', 'delivered', m[6], m[3], 'acked',
      {conn = conn, node = node}, 'da', NOW)
    INFLIGHT_DEL[#INFLIGHT_DEL + 1] = id
    retain(mkey, retention)
  else
    finish(mkey, id, user, m[1], 'delivered', m[6], m[3], {conn = conn, node = node},
      retention, 'acked', 'da', NOW)
  end
  count(user, 'ack_n', 1)
  count(user, 'ack_ms', latency)
  local u = user_acc(user)
  u.lat = u.lat or {}
  u.lat[#u.lat + 1] = latency
  u.samples = samples
  return 'ok|' .. m[5] .. '|' .. latency
end
