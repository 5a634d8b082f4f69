-- dispatch_many: dispatch.lua for a batch of entries of one partition in one call.
-- KEYS[1] partition prefix (P)
-- ARGV: 1 heartbeat_timeout_ms, 2 park_ttl_ms, 3 retention_ms, then 5 per entry:
--   entry id, message id, user, priority, collapse key to check ('': none)
-- Returns the answers of every entry, in order, each as dispatch.lua returns it, in
-- one flat list. (delivery/calls.py: DispatchMany)
local hb_timeout, park_ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local retention = tonumber(ARGV[3])
local FIRST_ENTRY, PER_ENTRY = 4, 5
local out, conns, tops = {}, {}, {}
refuse_when_full()  -- the entries stay pending: read again once memory frees
for i = FIRST_ENTRY, #ARGV, PER_ENTRY do
  dispatch_one(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], hb_timeout,
    park_ttl, retention, out, conns, tops)
end
settle(tops)
return out
