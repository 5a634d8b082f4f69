-- ack_many: the ack frames of several connections (users of one partition) in one call.
-- KEYS[1] partition prefix (P)
-- ARGV: 1 retention_ms, then per frame: user, connection id, node id, the number of
--   ids n, the n message ids
-- Returns the server time (ms), then the codes of every id (as ack.lua), frame after
-- frame, flattened. (delivery/edge_calls.py: AckMany)
local retention = tonumber(ARGV[1])
local FIRST_FRAME = 2
local out = {NOW_S}
local i = FIRST_FRAME
while i <= #ARGV do
  local user, conn, node, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local by = acked_by(conn, node)
  for k = i + 4, i + 3 + n do
    out[#out + 1] = ack_one(user, by, retention, ARGV[k])
  end
  i = i + 4 + n
end
return out
