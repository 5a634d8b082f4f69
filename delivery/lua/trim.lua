-- trim: remove from the partition's streams the entries every consumer is done with
-- (below the oldest pending entry; with none pending, up to the group's last delivered
-- one).
-- Dispatch and unpark trim the streams they read from; the scheduler's pass runs this
-- for the entries acknowledged after that (by acks, retries, hand-backs).
-- KEYS[1] partition prefix (P)
-- ARGV: none
-- Returns the length of the four streams (high, normal, low, drained) afterwards.
-- (delivery/calls.py: Trim)
local out = {}
for _, stream in ipairs({key_stream('high'), key_stream('normal'), key_stream('low'),
    key_drained()}) do
  local n = redis.call('XLEN', stream)
  if n > 0 then
    trim(stream, nil)
    n = redis.call('XLEN', stream)
  end
  out[#out + 1] = n
end
return out
