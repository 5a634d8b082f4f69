-- dispatch_one(...): the body of dispatch.lua as a function, shared with
-- dispatch_many.lua (one call per partition and batch). Arguments and answer as
-- documented in dispatch.lua; the durations are numbers.
local function dispatch_one(entry, id, user, prio, group, ack_timeout, hb_timeout, park_ttl,
    retention)
  local stream = key_stream(prio)
  redis.call('XACK', stream, group, entry)
  redis.call('XDEL', stream, entry)
  local mkey = key_msg(id)
  local m = redis.call('HMGET', mkey, 's', 'ea', 'a', 'pl', 'ca', 'ck', 'tp', 'rr', 'keep')
  if not m[1] then return {'skip', 'gone'} end
  if m[1] ~= 'queued' then return {'skip', m[1]} end
  local attempt = tonumber(m[3])
  if m[6] and m[9] ~= '1' then
    -- a newer message with the same collapse key came while this one was on its way
    -- (sent, then retried): the newer one wins, this one is never shown after it
    local latest = redis.call('GET', key_collapse(user, m[6]))
    if latest and latest ~= id then
      finish(mkey, id, user, 'queued', 'cancelled', attempt, {by = latest}, retention,
        'collapsed')
      return {'skip', 'cancelled'}
    end
  end
  if NOW >= tonumber(m[2]) then
    finish(mkey, id, user, 'queued', 'expired', attempt, nil, retention)
    return {'expired'}
  end
  local conns = live_conns(user, hb_timeout)
  if #conns == 0 then
    set_status(mkey, user, 'queued', 'parked')
    park(mkey, id, user, prio, tonumber(m[5]), tonumber(m[2]), attempt, park_ttl, entry)
    return {'parked'}
  end
  attempt = attempt + 1
  redis.call('HSET', mkey, 'a', attempt)
  set_status(mkey, user, 'queued', 'sent')
  redis.call('ZADD', key_inflight(), NOW + ack_timeout, id)
  event(mkey, 'sent', attempt, {to = conns})
  local out = {'sent', attempt, m[4], m[5], m[6] or '', m[7] or '', m[8] or '0'}
  for _, c in ipairs(conns) do out[#out + 1] = c end
  return out
end
