-- leave: a consumer that stops cleanly leaves the group of each stream of this
-- partition where it holds no entry, so `courier stats` and the console list no
-- ghost. XGROUP DELCONSUMER drops what the consumer holds, and what it holds are the
-- in-flight records of sent messages (until acked, or reclaimed by another consumer),
-- so a stream where it holds any keeps it: it goes once they are done (housekeeping).
-- Checked and removed in one step: nothing can join its pending list in between.
-- KEYS[1] partition prefix (P)
-- ARGV[1] the consumer's name
-- Returns how many of the partition's streams still hold entries of it.
-- (delivery/groups.py: Leave)
local consumer = ARGV[1]
local kept = 0
for _, stream in ipairs({key_stream('high'), key_stream('normal'), key_stream('low'),
    key_drained()}) do
  local held = redis.pcall('XPENDING', stream, GROUP, '-', '+', 1, consumer)
  if type(held) == 'table' and not held.err then  -- no stream or no group: nothing
    if #held == 0 then
      redis.call('XGROUP', 'DELCONSUMER', stream, GROUP, consumer)
    else
      kept = kept + 1
    end
  end
end
return kept
