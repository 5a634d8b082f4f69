-- ack: a user's device acknowledged messages.
-- KEYS[1] partition prefix (P)
-- ARGV: 1 user, 2 connection id, 3 node id, 4 retention_ms, 5 latency samples kept,
--   6.. message ids
-- Returns one code per id: 'ok|<priority>|<enqueue to ack ms>', 'duplicate' (already
-- delivered), 'final' (expired or cancelled: nothing changes; a dead message is
-- delivered by a late ack and leaves the dead-letter stream), 'forbidden'
-- (another user's) or 'unknown'. (delivery/calls.py: Ack, AckCode)
local user, conn, node = ARGV[1], ARGV[2], ARGV[3]
local retention, samples = tonumber(ARGV[4]), tonumber(ARGV[5])
local FIRST_ID = 6
local out = {}
for i = FIRST_ID, #ARGV do
  out[#out + 1] = ack_one(user, conn, node, retention, samples, ARGV[i])
end
return out
