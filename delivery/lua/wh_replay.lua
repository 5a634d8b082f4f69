-- wh_replay: an operator replays a dead webhook delivery (a fresh cycle of attempts,
-- due now) or purges it; either way its dead-letter entry goes.
-- KEYS[1] partition prefix (P)
-- ARGV: 1 dead-letter entry id, 2 action ('replay' or 'purge')
-- Returns 'replayed', 'purged' or 'unknown'. (delivery/webhook_store.py: ReplayDead)
local entry, action = ARGV[1], ARGV[2]
local dlq = key_wh_dlq()
local rows = redis.call('XRANGE', dlq, entry, entry)
if #rows == 0 then return 'unknown' end
local f = {}
local kv = rows[1][2]
for i = 1, #kv, 2 do f[kv[i]] = kv[i + 1] end
local ep, eid = f[WHD_ENDPOINT], f[WHD_EVENT]
redis.call('XDEL', dlq, entry)
redis.call('HINCRBY', key_wh_counts(), ep .. '|dead', -1)
if action ~= 'replay' then return 'purged' end
local jobs = key_wh_jobs(ep)
if redis.call('HSETNX', jobs, eid, f[WHD_BODY]) == 1 then
  redis.call('ZADD', key_wh_due(ep), NOW, eid)
  redis.call('HINCRBY', key_wh_counts(), ep .. '|pending', 1)
end
return 'replayed'
