-- wh_done: jobs whose endpoint answered 2xx are finished (a job another sender
-- finished already changes nothing).
-- KEYS[1] partition prefix (P)
-- ARGV: 1 endpoint id, then event ids
-- Returns how many were still waiting. (delivery/webhook_store.py: Done)
local ep = ARGV[1]
local FIRST_EVENT = 2
local due, jobs = key_wh_due(ep), key_wh_jobs(ep)
local done = 0
for i = FIRST_EVENT, #ARGV do
  local eid = ARGV[i]
  if redis.call('ZREM', due, eid) == 1 then
    redis.call('HDEL', jobs, eid, eid .. '|a', eid .. '|e')
    done = done + 1
  end
end
if done > 0 then redis.call('HINCRBY', key_wh_counts(), ep .. '|pending', -done) end
return done
