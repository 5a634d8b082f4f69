-- enqueue_many: accept several messages of one partition in one atomic step (the
-- producer's batch path: one call per partition instead of one per message).
-- KEYS[1] partition prefix (P)
-- KEYS[2] (a multi-call request only) this call's reservation: deleted first, so that
--   once every call of the request got its room, no call is refused for memory (one
--   refused reservation refuses them all; see delivery/producer.py)
-- ARGV: 1 k, the number of option sets; then k option sets of 14 arguments each
--   (enqueue.lua's arguments 4 to 17: priority .. escalate_ms); then 4 arguments per message:
--   id, user, payload (JSON), the number of its option set (1 .. k).
-- The messages of a batch mostly share their options, so a message costs 4 arguments
-- and the options are parsed once per set, not once per message.
-- Returns one answer per message, in order: its status when it was created, else
-- '=<id>|<status>' (a repeat: the id its idempotency key already had, or this very
-- call's, and that message's status).
-- (delivery/enqueue.py: EnqueueMany)
local RESERVATION = KEYS[2]
local k = tonumber(ARGV[1])
local PER_SET, PER_MESSAGE = 14, 4
if RESERVATION then redis.call('DEL', RESERVATION) end
local opts = {}  -- by the set's number as ARGV holds it (text)
for i = 1, k do opts[int(i)] = enqueue_opts(ARGV, 1 + (i - 1) * PER_SET) end
local out = {}
for base = 2 + k * PER_SET, #ARGV, PER_MESSAGE do
  local id, status, created = enqueue_one(ARGV[base], ARGV[base + 1], ARGV[base + 2],
    opts[ARGV[base + 3]])
  if created == 1 then
    out[#out + 1] = status
  else
    out[#out + 1] = '=' .. id .. '|' .. status
  end
end
return out
