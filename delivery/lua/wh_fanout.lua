-- wh_fanout: events the webhook dispatcher's group read become one delivery job per
-- endpoint that wants them, in the same step as their ack. An event is fanned out once
-- however often it is read: an entry that another consumer acked already makes no job,
-- and a job that exists already is not made again (jobs are keyed by event id).
-- KEYS[1] partition prefix (P)
-- ARGV: 1 group, then per event: entry id, event id, body (JSON), k, then k endpoint ids
-- Returns the number of jobs made. (delivery/webhook_store.py: FanOut)
local group = ARGV[1]
local FIRST_EVENT = 2
local made = 0
local i = FIRST_EVENT
while i <= #ARGV do
  local entry, eid, body, k = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  if redis.call('XACK', key_events(), group, entry) == 1 then
    for j = i + 4, i + 3 + k do
      local ep = ARGV[j]
      if redis.call('HSETNX', key_wh_jobs(ep), eid, body) == 1 then
        redis.call('ZADD', key_wh_due(ep), NOW, eid)
        redis.call('HINCRBY', key_wh_counts(), ep .. '|pending', 1)
        made = made + 1
      end
    end
  end
  i = i + 4 + k
end
return made
