-- dispatch: a consumer read a stream entry; send the message to the user's live
-- connections (status sent, ack deadline set) or park it for an offline user.
-- The entry is acknowledged and deleted in the same step, so a crash either
-- leaves the entry pending (reclaimed later) or the message fully moved on.
-- KEYS[1] partition prefix
-- ARGV: 1 entry id, 2 message id, 3 user, 4 priority, 5 group, 6 ack_timeout_ms,
--   7 heartbeat_timeout_ms, 8 park_ttl_ms, 9 retention_ms
-- Returns {'sent', attempt, payload, created, collapse, topic, reply, conn...},
-- {'parked'}, {'expired'} or {'skip', status}.
local entry, id, user, prio, group = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local stream = key_stream(prio)
redis.call('XACK', stream, group, entry)
redis.call('XDEL', stream, entry)
local mkey = key_msg(id)
local m = redis.call('HMGET', mkey, 's', 'ea', 'a', 'pl', 'ca', 'ck', 'tp', 'rr')
if not m[1] then return {'skip', 'gone'} end
if m[1] ~= 'queued' then return {'skip', m[1]} end
local attempt = tonumber(m[3])
if NOW >= tonumber(m[2]) then
  finish(mkey, id, user, 'queued', 'expired', attempt, nil, tonumber(ARGV[9]))
  return {'expired'}
end
local conns = live_conns(user, tonumber(ARGV[7]))
if #conns == 0 then
  set_status(mkey, user, 'queued', 'parked')
  park(mkey, id, user, prio, tonumber(m[5]), tonumber(m[2]), attempt, tonumber(ARGV[8]))
  return {'parked'}
end
attempt = attempt + 1
redis.call('HSET', mkey, 'a', attempt)
set_status(mkey, user, 'queued', 'sent')
redis.call('ZADD', key_inflight(), NOW + tonumber(ARGV[6]), id)
event(mkey, 'sent', attempt, {to = conns})
local out = {'sent', attempt, m[4], m[5], m[6] or '', m[7] or '', m[8] or '0'}
for _, c in ipairs(conns) do out[#out + 1] = c end
return out
