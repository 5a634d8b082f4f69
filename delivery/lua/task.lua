-- task: record a task's latest status and tell its owner, in one step: the task
-- hash, the owner's active-task index, a guaranteed message (collapse key
-- task:<id>, so an offline owner finds only the latest progress; final statuses
-- are never collapsed away) and a live frame for connections subscribed to the topic.
-- KEYS[1] partition prefix (P, of the owner)
-- ARGV: 1 task id, 2 owner, 3 status, 4 task data (JSON object), 5 task ttl ms,
--   6 topics channel, 7 live frame (JSON), 8 final (1/0), 9.. the message's enqueue
--   arguments (enqueue.lua's 1 .. 17: id, user, payload, then the option set)
-- Task ids are scoped by their owner: the same id for two users names two tasks.
-- Returns {'ok', message id, message status, created} or {'final', status} (the
-- task already ended; nothing changes). (delivery/tasks.py: Task, TaskCode)
local task_id, user, status, data = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ttl, channel, frame, final = tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
local MESSAGE = 9  -- where the enqueue arguments start
local tk = key_task(user, task_id)
local cur = redis.call('HMGET', tk, TASK_USER, TASK_STATUS, TASK_FINAL)
if cur[3] == '1' then return {'final', cur[2]} end
if not cur[1] then redis.call('HSET', tk, TASK_CREATED_AT, NOW) end
redis.call('HSET', tk, TASK_USER, user, TASK_ID, task_id, TASK_STATUS, status,
  TASK_DATA, data, TASK_UPDATED_AT, NOW, TASK_FINAL, final)
redis.call('PEXPIRE', tk, ttl)
local ut = key_user_tasks(user)
if final == '1' then
  redis.call('ZREM', ut, task_id)
else
  redis.call('ZADD', ut, NOW, task_id)
  redis.call('PEXPIRE', ut, ttl)
end
local id, msg_status, created = enqueue_one(ARGV[MESSAGE], ARGV[MESSAGE + 1],
  ARGV[MESSAGE + 2], enqueue_opts(ARGV, MESSAGE + 2))
redis.call('HSET', tk, TASK_MESSAGE_ID, id)
redis.call('PUBLISH', channel, frame)
return {'ok', id, msg_status, created}
