-- retry: sent messages that were not acknowledged (or could not be pushed) are
-- rescheduled after their backoff delay, or buried in the DLQ when their attempts
-- are used up, or expired when their ttl passes first.
-- KEYS[1] partition prefix
-- ARGV: 1 reason, 2 force (1: do not require the ack deadline to have passed),
--   3 retention_ms, 4 dlq max length, 5 dead keep ms, then pairs: id, delay_ms
-- A push that reached no connection at all (reason 'unreachable') gives the attempt
-- back: nobody received it, so it neither counts nor buries the message.
-- Returns one code per id: 'scheduled', 'dead', 'expired' or 'skip'.
local reason, force = ARGV[1], ARGV[2] == '1'
local retention, dlq_max, dead_keep = tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local out = {}
for i = 6, #ARGV, 2 do
  local id, delay = ARGV[i], tonumber(ARGV[i + 1])
  local mkey = key_msg(id)
  local m = redis.call('HMGET', mkey, 's', 'u', 'a', 'ma', 'ea', 'n')
  local deadline = redis.call('ZSCORE', key_inflight(), id)
  if deadline and m[1] ~= 'sent' and tonumber(deadline) <= NOW then
    -- a leftover (the hash expired, or the message moved on without us): drop it, so
    -- that leftovers never fill `due`'s batch and block real retries
    redis.call('ZREM', key_inflight(), id)
    out[#out + 1] = 'skip'
  elseif m[1] ~= 'sent' or not deadline or (not force and tonumber(deadline) > NOW) then
    out[#out + 1] = 'skip'
  else
    local user, attempt = m[2], tonumber(m[3])
    redis.call('ZREM', key_inflight(), id)
    if reason == 'unreachable' and attempt > 0 then
      attempt = attempt - 1
      redis.call('HSET', mkey, 'a', attempt)
    end
    if attempt >= tonumber(m[4]) and reason ~= 'unreachable' then
      bury(mkey, id, user, 'sent', m[6], attempt, reason, dlq_max, dead_keep)
      out[#out + 1] = 'dead'
    elseif NOW + delay >= tonumber(m[5]) then
      finish(mkey, id, user, 'sent', 'expired', m[6], attempt, nil, retention)
      out[#out + 1] = 'expired'
    else
      redis.call('ZADD', key_delayed(), NOW + delay, id)
      set_status(mkey, user, 'sent', 'scheduled', m[6], attempt, 'retry',
        {due = NOW + delay, reason = reason}, 'le', reason)
      out[#out + 1] = 'scheduled'
    end
  end
end
return out
