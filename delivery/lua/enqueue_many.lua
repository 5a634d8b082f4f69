-- enqueue_many: accept several messages of one partition in one atomic step (the
-- producer's batch path: one call per partition instead of one per message).
-- KEYS[1] partition prefix
-- ARGV: 1 arguments per message (16), then each message's arguments exactly as
--   enqueue.lua takes them, one message after another
-- Returns {id, status, created} of each message, in order, flattened.
local n = tonumber(ARGV[1])
local out = {}
for base = 1, #ARGV - 1, n do
  local r = enqueue_one(ARGV, base)
  out[#out + 1] = r[1]
  out[#out + 1] = r[2]
  out[#out + 1] = r[3]
end
return out
