-- wh_drop: an endpoint was deleted: its waiting jobs in this partition and their count
-- go in one step (its dead letters stay until purged).
-- KEYS[1] partition prefix (P)
-- ARGV: 1 endpoint id
-- Returns how many jobs were waiting. (delivery/webhook_store.py: Drop)
local ep = ARGV[1]
local waiting = redis.call('ZCARD', key_wh_due(ep))
redis.call('DEL', key_wh_due(ep), key_wh_jobs(ep))
redis.call('HDEL', key_wh_counts(), ep .. '|pending')
return waiting
