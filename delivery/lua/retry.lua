-- retry: sent messages that were not acknowledged (or could not be pushed) are
-- rescheduled after their backoff delay, or buried in the DLQ when their attempts
-- are used up, or expired when their ttl passes first.
-- KEYS[1] partition prefix (P)
-- ARGV: 1 reason, 2 force (1: do not require the ack deadline to have passed),
--   3 retention_ms, 4 dlq max length, 5 dead keep ms, then 2 per message: id, delay_ms
-- A push that reached no connection at all (reason 'unreachable') gives the attempt
-- back: nobody received it, so it neither counts nor buries the message.
-- Returns one code per id: 'scheduled', 'dead', 'expired' or 'skip'.
-- (delivery/calls.py: Retry, RetryOutcome)
local reason, force = ARGV[1], ARGV[2] == '1'
local retention, dlq_max, dead_keep = tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local FIRST_MESSAGE, PER_MESSAGE = 6, 2
refuse_when_full()  -- a full Redis may have refused the acks: count no attempt then
local out = {}
for i = FIRST_MESSAGE, #ARGV, PER_MESSAGE do
  local id, delay = ARGV[i], tonumber(ARGV[i + 1])
  local mkey = key_msg(id)
  local m = redis.call('HMGET', mkey, F_STATUS, F_USER, F_ATTEMPTS, F_MAX_ATTEMPTS,
    F_EXPIRES_AT, F_EVENTS)
  local status, user, attempt, max_attempts, expires, n = m[1], m[2], m[3], m[4], m[5], m[6]
  local deadline = redis.call('ZSCORE', key_inflight(), id)
  if deadline and status ~= 'sent' and tonumber(deadline) <= NOW then
    -- a leftover (the hash expired, or the message moved on without us): drop it, so
    -- that leftovers never fill `due`'s batch and block real retries
    redis.call('ZREM', key_inflight(), id)
    out[#out + 1] = 'skip'
  elseif status ~= 'sent' or not deadline or (not force and tonumber(deadline) > NOW) then
    out[#out + 1] = 'skip'
  else
    attempt = tonumber(attempt)
    redis.call('ZREM', key_inflight(), id)
    if reason == 'unreachable' and attempt > 0 then
      attempt = attempt - 1
      redis.call('HSET', mkey, F_ATTEMPTS, attempt)
    end
    if attempt >= tonumber(max_attempts) and reason ~= 'unreachable' then
      bury(mkey, id, user, 'sent', n, attempt, reason, dlq_max, dead_keep)
      out[#out + 1] = 'dead'
    elseif NOW + delay >= tonumber(expires) then
      finish(mkey, id, user, 'sent', 'expired', n, attempt, nil, retention)
      out[#out + 1] = 'expired'
    else
      redis.call('ZADD', key_delayed(), NOW + delay, id)
      set_status(mkey, user, 'sent', 'scheduled', n, attempt, 'retry',
        {due = NOW + delay, reason = reason}, F_LAST_ERROR, reason)
      out[#out + 1] = 'scheduled'
    end
  end
end
return out
