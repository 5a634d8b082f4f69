-- ack_many: the ack frames of several connections (users of one partition) in one call.
-- KEYS[1] partition prefix (P)
-- ARGV: 1 retention_ms, 2 latency samples kept, then per frame: user, connection id,
--   node id, the number of ids n, the n message ids
-- Returns the codes of every id (as ack.lua), frame after frame, flattened.
-- (delivery/calls.py: AckMany)
local retention, samples = tonumber(ARGV[1]), tonumber(ARGV[2])
local FIRST_FRAME = 3
local out = {}
local i = FIRST_FRAME
while i <= #ARGV do
  local user, conn, node, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  for k = i + 4, i + 3 + n do
    out[#out + 1] = ack_one(user, conn, node, retention, samples, ARGV[k])
  end
  i = i + 4 + n
end
return out
