-- dispatch: a consumer read a stream entry; send the message to the user's live
-- connections (status sent, ack deadline set) or park it for an offline user.
-- The entry is acknowledged and removed in the same step, so a crash either
-- leaves the entry pending (reclaimed later) or the message fully moved on.
-- KEYS[1] partition prefix
-- ARGV: 1 entry id, 2 message id, 3 user, 4 priority, 5 group, 6 ack_timeout_ms,
--   7 heartbeat_timeout_ms, 8 park_ttl_ms, 9 retention_ms
-- Returns {'sent', attempt, payload, created, collapse, topic, reply, conn...},
-- {'parked'}, {'expired'} or {'skip', status}.
local done = {}
local out = dispatch_one(ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[6]),
  tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), done, {})
settle(ARGV[5], done)
return out
