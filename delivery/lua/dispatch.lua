-- dispatch: a consumer read a stream entry; send the message to the user's live
-- connections (status sent, ack deadline set) or park it for an offline user.
-- The entry is acknowledged and removed in the same step, so a crash either
-- leaves the entry pending (reclaimed later) or the message fully moved on.
-- KEYS[1] partition prefix (P)
-- ARGV: 1 entry id, 2 message id, 3 user, 4 priority, 5 group, 6 ack_timeout_ms,
--   7 heartbeat_timeout_ms, 8 park_ttl_ms, 9 retention_ms
-- Returns {'sent', attempt, payload, created, collapse, topic, reply, conn member...},
-- {'parked'}, {'expired'} or {'skip', status}. (delivery/calls.py: Dispatch)
local entry, id, user, prio, group = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ack_timeout, hb_timeout = tonumber(ARGV[6]), tonumber(ARGV[7])
local park_ttl, retention = tonumber(ARGV[8]), tonumber(ARGV[9])
local done = {}
refuse_when_full()
local out = dispatch_one(entry, id, user, prio, ack_timeout, hb_timeout, park_ttl, retention,
  done, {})
settle(group, done)
return out
