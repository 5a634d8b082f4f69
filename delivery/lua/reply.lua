-- reply: the user answers a message that had reply_requested. The reply is kept in
-- the message, recorded in its timeline and published to whoever awaits it; it
-- also counts as the message's acknowledgement.
-- KEYS[1] partition prefix
-- ARGV: 1 user, 2 connection id, 3 message id, 4 reply (JSON), 5 reply channel,
--   6 retention_ms
-- Returns 'ok', 'unknown', 'forbidden', 'not_requested' or 'duplicate'.
local user, conn, id = ARGV[1], ARGV[2], ARGV[3]
local mkey = key_msg(id)
local m = redis.call('HMGET', mkey, 's', 'u', 'rr', 'rp', 'a', 'n')
if not m[1] then return 'unknown' end
if m[2] ~= user then return 'forbidden' end
if m[3] ~= '1' then return 'not_requested' end
if m[4] then return 'duplicate' end
append(mkey, m[6], 'replied', m[5], {conn = conn}, 'rp', ARGV[4])
if not FINAL[m[1]] and m[1] ~= 'dead' then
  finish(mkey, id, user, m[1], 'delivered', (tonumber(m[6]) or 0) + 1, m[5],
    {conn = conn, via = 'reply'}, tonumber(ARGV[6]), 'acked', 'da', NOW)
end
redis.call('PUBLISH', ARGV[5], ARGV[4])
return 'ok'
