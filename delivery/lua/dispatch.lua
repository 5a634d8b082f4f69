-- dispatch: a consumer read a stream entry; send the message to the user's live
-- connections (status sent) or park it for an offline user (or expire it, or drop it
-- when a newer message with its collapse key came). A sent message's entry stays
-- pending in the consumer group: that is its in-flight record (its idle time is how
-- long it waits for the ack; reclaim.lua finds it past the ack timeout). Any other
-- entry is acknowledged in the same step, so a crash either leaves the entry pending
-- (reclaimed later) or the message fully moved on.
-- KEYS[1] partition prefix (P)
-- ARGV: 1 entry id, 2 message id, 3 user, 4 priority, 5 collapse key to check ('':
--   none, or never collapsed away), 6 heartbeat_timeout_ms, 7 park_ttl_ms,
--   8 retention_ms
-- Returns a flat list: 'sent', attempt, the number of connections k, k conn members;
-- or 'parked'; or 'expired'; or 'skip', the status found ('gone': no hash; 'cancelled':
-- collapsed). (delivery/calls.py: Dispatch)
local entry, id, user, prio, ck = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local hb_timeout, park_ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local retention = tonumber(ARGV[8])
local out, tops = {}, {}
refuse_when_full()
dispatch_one(entry, id, user, prio, ck, hb_timeout, park_ttl, retention, out, {}, tops)
settle(tops)
return out
