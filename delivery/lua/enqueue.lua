-- enqueue: accept one message for one user.
-- KEYS[1] partition prefix (P)
-- KEYS[2] (a multi-call request only) this call's reservation: deleted first, so that
--   once every call of the request got its room, no call is refused for memory (one
--   refused reservation refuses them all; see delivery/producer.py)
-- ARGV: 1 id, 2 user, 3 payload (JSON), then the option set 4 .. 17 (read by
--   enqueue_opts in _enqueue.lua): 4 priority, 5 ttl_ms, 6 delay_ms (-1: none),
--   7 deliver_at_ms (-1: none), 8 max_attempts, 9 idempotency key, 10 collapse key,
--   11 topic, 12 reply_requested (0/1), 13 retention_ms, 14 user index ttl ms,
--   15 user index cap, 16 keep (1: never collapsed away), 17 escalate_ms (-1: none)
-- Returns {id, status, created (1) or 0 when the idempotency key already had a message}.
-- (delivery/enqueue.py: Enqueue, EnqueueOptions)
local RESERVATION = KEYS[2]
local id, user, payload = ARGV[1], ARGV[2], ARGV[3]
local OPTIONS_AFTER = 3
if RESERVATION then redis.call('DEL', RESERVATION) end
return {enqueue_one(id, user, payload, enqueue_opts(ARGV, OPTIONS_AFTER))}
