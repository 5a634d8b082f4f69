-- dispatch_many: dispatch.lua for a batch of entries of one partition in one call.
-- KEYS[1] partition prefix (P)
-- ARGV: 1 group, 2 ack_timeout_ms, 3 heartbeat_timeout_ms, 4 park_ttl_ms,
--   5 retention_ms, then 4 per entry: entry id, message id, user, priority
-- Returns one answer per entry, in order, each as dispatch.lua returns it.
-- (delivery/calls.py: DispatchMany)
local group = ARGV[1]
local ack_timeout, hb_timeout = tonumber(ARGV[2]), tonumber(ARGV[3])
local park_ttl, retention = tonumber(ARGV[4]), tonumber(ARGV[5])
local FIRST_ENTRY, PER_ENTRY = 6, 4
local out, done, conns = {}, {}, {}
refuse_when_full()  -- the entries stay pending: read again once memory frees
for i = FIRST_ENTRY, #ARGV, PER_ENTRY do
  out[#out + 1] = dispatch_one(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ack_timeout,
    hb_timeout, park_ttl, retention, done, conns)
end
settle(group, done)
return out
