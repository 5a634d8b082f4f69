-- cancel: a user asks the producer of one of their tasks to cancel it.
-- KEYS[1] partition prefix (of the user)
-- ARGV: 1 user, 2 task id, 3 cancel channel
-- Returns 'ok', or 'unknown' when the user has no such task (nothing is written).
local tk = key_task(ARGV[1], ARGV[2])
if redis.call('EXISTS', tk) == 0 then return 'unknown' end
redis.call('HSET', tk, 'cancel_requested', '1')
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 'ok'
