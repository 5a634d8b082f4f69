-- retry: sent messages that were not acknowledged in time (reclaim.lua found their
-- in-flight record idle past the ack timeout) or could not be pushed at all are
-- rescheduled after their backoff delay, or buried in the DLQ when their attempts are
-- used up, or expired when their ttl passes first. Their in-flight record (the pending
-- stream entry) is acknowledged.
-- KEYS[1] partition prefix (P)
-- ARGV: 1 reason, 2 retention_ms, 3 dlq max length, 4 dead keep ms, then 3 per
--   message: id, its in-flight record as the hash names it ('': whichever it has),
--   delay_ms
-- A message that is no longer sent, or sent again since (another record), is skipped.
-- A push that reached no connection at all (reason 'unreachable') gives the attempt
-- back: nobody received it, so it neither counts nor buries the message.
-- Returns one code per id: 'scheduled', 'dead', 'expired' or 'skip'.
-- (delivery/calls.py: Retry, RetryOutcome)
local reason = ARGV[1]
local retention, dlq_max, dead_keep = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local FIRST_MESSAGE, PER_MESSAGE = 5, 3
refuse_when_full()  -- a full Redis may have refused the acks: count no attempt then
local out = {}
for i = FIRST_MESSAGE, #ARGV, PER_MESSAGE do
  local id, record, delay = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local mkey = key_msg(id)
  local m = redis.call('HMGET', mkey, F_STATUS, F_USER, F_ATTEMPTS, F_MAX_ATTEMPTS,
    F_EXPIRES_AT, F_EVENTS, F_PRIORITY, F_ENTRY)
  local status, user, attempt, max_attempts, expires, n = m[1], m[2], m[3], m[4], m[5], m[6]
  local prio, en = m[7], m[8]
  if status ~= 'sent' or (record ~= '' and en ~= record) then
    out[#out + 1] = 'skip'
  else
    local where = {prio, en}
    local tries = tonumber(attempt) or 0
    if reason == 'unreachable' and tries > 0 then
      tries = tries - 1
      attempt = int(tries)
      redis.call('HSET', mkey, F_ATTEMPTS, attempt)
    end
    if tries >= tonumber(max_attempts) and reason ~= 'unreachable' then
      bury(mkey, id, user, 'sent', n, attempt, reason, dlq_max, dead_keep, where)
      out[#out + 1] = 'dead'
    elseif NOW + delay >= tonumber(expires) then
      finish(mkey, id, user, 'sent', 'expired', n, attempt, nil, retention, nil, where)
      out[#out + 1] = 'expired'
    else
      ack_inflight(prio, en)
      local due = int(NOW + delay)
      redis.call('ZADD', key_delayed(), due, id)
      set_status(mkey, user, 'sent', 'scheduled', n, attempt, 'retry',
        ',"due":' .. due .. jstr('reason', reason), F_LAST_ERROR, reason)
      out[#out + 1] = 'scheduled'
    end
  end
end
settle({})
return out
