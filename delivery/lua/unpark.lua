-- unpark: a device of the user connected; hand it the next parked messages,
-- highest priority first, oldest first (status sent). Each gets an entry in the
-- partition's drained stream, read at once by the node's consumer: that pending entry
-- is its in-flight record, as a dispatched message's is in its priority stream.
-- KEYS[1] partition prefix (P)
-- ARGV: 1 user, 2 node id, 3 connection id, 4 limit, 5 retention_ms
-- Returns {remaining, then 9 per message: id, attempt, priority, payload, created,
-- collapse, topic, reply, in-flight record}. (delivery/edge_calls.py: Unpark)
local user, node, conn, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local retention = tonumber(ARGV[5])
local pk = key_parked(user)
local ids = redis.call('ZRANGE', pk, 0, limit - 1)
local out = {0}
local drained = key_drained()
local send, gone = {}, {}
for _, id in ipairs(ids) do
  local mkey = key_msg(id)
  local m = redis.call('HMGET', mkey, F_STATUS, F_ATTEMPTS, F_PRIORITY, F_PAYLOAD,
    F_CREATED_AT, F_COLLAPSE_KEY, F_TOPIC, F_REPLY_REQUESTED, F_EXPIRES_AT, F_EVENTS)
  if m[1] == 'parked' then
    if NOW >= tonumber(m[9]) then
      gone[#gone + 1] = {mkey, id, m}
    else
      send[#send + 1] = {mkey, id, m}
    end
  end
end
-- The entries first, read into the node's pending list in one step: if that failed,
-- nothing else would have changed (the group is made here when it is missing).
if #send > 0 then
  redis.pcall('XGROUP', 'CREATE', drained, GROUP, '$', 'MKSTREAM')
  for _, s in ipairs(send) do
    s[4] = redis.call('XADD', drained, '*', ENTRY_MESSAGE, s[2], ENTRY_USER, user)
  end
  redis.call('XREADGROUP', 'GROUP', GROUP, node, 'COUNT', #send, 'STREAMS', drained, '>')
end
if #ids > 0 then
  call_chunked('ZREM', pk, ids, 1000)
  call_chunked('ZREM', key_parkx(), ids, 1000)
end
for _, g in ipairs(gone) do
  local m = g[3]
  finish(g[1], g[2], user, 'parked', 'expired', m[10], m[2], nil, retention)
end
local to = ',"to":["' .. conn_member(node, conn) .. '"],"from":"parked"'
for _, s in ipairs(send) do
  local mkey, id, m, en = s[1], s[2], s[3], s[4]
  local attempt = int((tonumber(m[2]) or 0) + 1)
  set_status(mkey, user, 'parked', 'sent', m[10], attempt, nil, to, F_ATTEMPTS, attempt,
    F_ENTRY, 'd' .. en)
  local row = {id, attempt, m[3], m[4], m[5], m[6] or '', m[7] or '', m[8] or '0', 'd' .. en}
  for _, v in ipairs(row) do out[#out + 1] = v end
end
if #send > 0 then trim(drained, send[#send][4]) end
out[1] = redis.call('ZCARD', pk)
return out
