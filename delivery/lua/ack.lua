-- ack: a user's device acknowledged messages.
-- KEYS[1] partition prefix (P)
-- ARGV: 1 user, 2 connection id, 3 node id, 4 retention_ms, 5.. message ids
-- Returns the server time (ms), then one code per id: 'ok|<priority>|<created ms>'
-- (the enqueue-to-ack latency is the time minus created), 'duplicate' (already
-- delivered), 'final' (expired or cancelled: nothing changes; a dead message is
-- delivered by a late ack and leaves the dead-letter stream), 'forbidden' (another
-- user's) or 'unknown'. (delivery/edge_calls.py: Ack, AckCode)
local user, conn, node = ARGV[1], ARGV[2], ARGV[3]
local retention = tonumber(ARGV[4])
local FIRST_ID = 5
local by = acked_by(conn, node)
local out = {NOW_S}
for i = FIRST_ID, #ARGV do
  out[#out + 1] = ack_one(user, by, retention, ARGV[i])
end
return out
