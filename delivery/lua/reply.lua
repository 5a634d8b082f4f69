-- reply: the user answers a message that had reply_requested. The reply is kept in
-- the message, recorded in its timeline and published to whoever awaits it; it
-- also counts as the message's acknowledgement.
-- KEYS[1] partition prefix
-- ARGV: 1 user, 2 connection id, 3 message id, 4 reply (JSON), 5 reply channel,
--   6 retention_ms
-- Returns 'ok', 'unknown', 'forbidden', 'not_requested' or 'duplicate'.
local user, conn, id = ARGV[1], ARGV[2], ARGV[3]
local mkey = key_msg(id)
local m = redis.call('HMGET', mkey, 's', 'u', 'rr', 'rp', 'a')
if not m[1] then return 'unknown' end
if m[2] ~= user then return 'forbidden' end
if m[3] ~= '1' then return 'not_requested' end
if m[4] then return 'duplicate' end
redis.call('HSET', mkey, 'rp', ARGV[4])
event(mkey, 'replied', m[5], {conn = conn})
if not FINAL[m[1]] and m[1] ~= 'dead' then
  redis.call('HSET', mkey, 'da', NOW)
  finish(mkey, id, user, m[1], 'delivered', m[5], {conn = conn, via = 'reply'},
    tonumber(ARGV[6]), 'acked')
end
redis.call('PUBLISH', ARGV[5], ARGV[4])
return 'ok'
