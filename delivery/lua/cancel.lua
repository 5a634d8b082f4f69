-- cancel: a user asks the producer of one of their tasks to cancel it.
-- KEYS[1] partition prefix (P, of the user)
-- ARGV: 1 user, 2 task id, 3 cancel channel
-- Returns 'ok', or 'unknown' when the user has no such task (nothing is written).
-- (delivery/tasks.py: Cancel, CancelCode)
local user, task_id, channel = ARGV[1], ARGV[2], ARGV[3]
local tk = key_task(user, task_id)
if redis.call('EXISTS', tk) == 0 then return 'unknown' end
redis.call('HSET', tk, TASK_CANCEL_REQUESTED, '1')
redis.call('PUBLISH', channel, user)
return 'ok'
