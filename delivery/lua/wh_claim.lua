-- wh_claim: take an endpoint's jobs that are due for their next attempt, and lease
-- them: their due time moves to the end of the lease, so a sender that dies mid-request
-- leaves the job to be claimed again when the lease ends (at least once).
-- KEYS[1] partition prefix (P)
-- ARGV: 1 endpoint id, 2 limit, 3 lease ms
-- Returns {server ms, next due ms (-1: none), then 3 per job: event id, body, attempts
-- made}. (delivery/webhook_store.py: Claim)
local ep, limit, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local due, jobs = key_wh_due(ep), key_wh_jobs(ep)
local ids = redis.call('ZRANGEBYSCORE', due, '-inf', NOW, 'LIMIT', 0, limit)
local out = {NOW, -1}
for _, eid in ipairs(ids) do
  local row = redis.call('HMGET', jobs, eid, eid .. '|a')
  if row[1] then
    redis.call('ZADD', due, NOW + lease, eid)
    out[#out + 1] = eid
    out[#out + 1] = row[1]
    out[#out + 1] = row[2] or '0'
  else
    redis.call('ZREM', due, eid)  -- a leftover without its job
  end
end
local nxt = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
out[2] = nxt[2] or -1
return out
