-- promote: move messages whose due time has come from the delayed set to their
-- priority stream (or expire them).
-- KEYS[1] partition prefix
-- ARGV: 1 limit, 2 retention_ms
-- Returns {moved, next due ms or -1}.
local ids = redis.call('ZRANGEBYSCORE', key_delayed(), '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(ids) do
  redis.call('ZREM', key_delayed(), id)
  local mkey = key_msg(id)
  local m = redis.call('HMGET', mkey, 's', 'u', 'p', 'ea', 'a', 'n')
  if m[1] == 'scheduled' then
    if NOW >= tonumber(m[4]) then
      finish(mkey, id, m[2], 'scheduled', 'expired', m[6], m[5], nil, tonumber(ARGV[2]))
    else
      redis.call('XADD', key_stream(m[3]), '*', 'm', id, 'u', m[2])
      set_status(mkey, m[2], 'scheduled', 'queued', m[6], m[5], nil, {from = 'scheduled'})
    end
  end
end
local nxt = redis.call('ZRANGE', key_delayed(), 0, 0, 'WITHSCORES')
return {#ids, nxt[2] or -1}
