-- wh_fail: attempts that failed (no 2xx, timeout, refused connection) are counted; the
-- job is due again after its backoff delay, or, its attempts used up, goes to the
-- partition's webhook dead-letter stream.
-- KEYS[1] partition prefix (P)
-- ARGV: 1 endpoint id, 2 max attempts, 3 dlq max length, then 3 per job: event id,
--   delay ms, error
-- Returns one word per job: 'retry', 'dead' or 'gone' (finished or dead already).
-- (delivery/webhook_store.py: Fail)
local ep, max_attempts, dlq_max = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local FIRST_JOB, PER_JOB = 4, 3
local due, jobs = key_wh_due(ep), key_wh_jobs(ep)
local out = {}
local dead = 0
for i = FIRST_JOB, #ARGV, PER_JOB do
  local eid, delay, err = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local body = redis.call('HGET', jobs, eid)
  if not body or not redis.call('ZSCORE', due, eid) then
    out[#out + 1] = 'gone'
  else
    local attempts = redis.call('HINCRBY', jobs, eid .. '|a', 1)
    if attempts >= max_attempts then
      redis.call('XADD', key_wh_dlq(), 'MAXLEN', '~', dlq_max, '*', WHD_ENDPOINT, ep,
        WHD_EVENT, eid, WHD_BODY, body, WHD_ATTEMPTS, attempts, WHD_ERROR, err)
      redis.call('ZREM', due, eid)
      redis.call('HDEL', jobs, eid, eid .. '|a', eid .. '|e')
      dead = dead + 1
      out[#out + 1] = 'dead'
    else
      redis.call('ZADD', due, NOW + delay, eid)
      redis.call('HSET', jobs, eid .. '|e', err)
      out[#out + 1] = 'retry'
    end
  end
end
if dead > 0 then
  redis.call('HINCRBY', key_wh_counts(), ep .. '|pending', -dead)
  redis.call('HINCRBY', key_wh_counts(), ep .. '|dead', dead)
end
return out
