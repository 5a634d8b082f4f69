-- task: record a task's latest status and tell its owner, in one step: the task
-- hash, the owner's active-task index, a guaranteed message (collapse key
-- task:<id>, so an offline owner finds only the latest progress; final statuses
-- are never collapsed away) and a live frame for connections subscribed to the topic.
-- KEYS[1] partition prefix (of the owner)
-- ARGV: 1 task id, 2 owner, 3 status, 4 task data (JSON object), 5 task ttl ms,
--   6 topics channel, 7 live frame (JSON), 8 final (1/0), 9.. the enqueue arguments
--   (see enqueue.lua)
-- Task ids are scoped by their owner: the same id for two users names two tasks.
-- Returns {'ok', message id, message status, created} or {'final', status} (the
-- task already ended; nothing changes).
local task_id, user, status = ARGV[1], ARGV[2], ARGV[3]
local ttl = tonumber(ARGV[5])
local tk = key_task(user, task_id)
local cur = redis.call('HMGET', tk, 'user_id', 'status', 'final')
if cur[3] == '1' then return {'final', cur[2]} end
if not cur[1] then redis.call('HSET', tk, 'created_at', NOW) end
redis.call('HSET', tk, 'user_id', user, 'task_id', task_id, 'status', status,
  'data', ARGV[4], 'updated_at', NOW, 'final', ARGV[8])
redis.call('PEXPIRE', tk, ttl)
local ut = key_user_tasks(user)
if ARGV[8] == '1' then
  redis.call('ZREM', ut, task_id)
else
  redis.call('ZADD', ut, NOW, task_id)
  redis.call('PEXPIRE', ut, ttl)
end
local res = {enqueue_one(ARGV[9], ARGV[10], ARGV[11], enqueue_opts(ARGV, 11))}
redis.call('HSET', tk, 'message_id', res[1])
redis.call('PUBLISH', ARGV[6], ARGV[7])
return {'ok', res[1], res[2], res[3]}
