-- dispatch_one(...): one read stream entry (dispatch.lua, dispatch_many.lua). Arguments
-- as documented in dispatch.lua; the durations are numbers. The answer is appended to
-- the flat list `out` (see dispatch.lua). A sent message keeps its entry pending: the
-- consumer group's pending entry is its in-flight record, acknowledged by the ack (or
-- the retry, the hand-back). Every other entry is acknowledged when the script ends
-- (ack_later), and settle() trims what every consumer is done with. `conns` caches
-- users' live connections, `tops` the last entry per stream (a read answers a stream's
-- entries in order; were one older, trim() would only keep more).
local function dispatch_one(entry, id, user, prio, ck, hb_timeout, park_ttl, retention, out,
    conns, tops)
  local stream = stream_of(prio)
  tops[stream] = entry  -- a stream's entries come in the order it holds them
  local mkey = key_msg(id)
  local m = redis.call('HMGET', mkey, F_STATUS, F_EXPIRES_AT, F_ATTEMPTS, F_EVENTS)
  local status, n = m[1], m[4]
  if status ~= 'queued' then
    -- (a sent message whose in-flight record this very entry is, dispatched twice: a
    -- reader that stalled past the ack timeout while the reclaim took its entry over)
    if status ~= 'sent' or redis.call('HGET', mkey, F_ENTRY) ~= entry then
      ack_later(stream, entry)
    end
    out[#out + 1] = 'skip'
    out[#out + 1] = status or 'gone'
    return
  end
  local attempt = m[3]
  if ck ~= '' then
    -- a newer message with the same collapse key came while this one was on its way
    -- (sent, then retried): the newer one wins, this one is never shown after it
    local latest = redis.call('GET', key_collapse(user, ck))
    if latest and latest ~= id then
      ack_later(stream, entry)
      finish(mkey, id, user, 'queued', 'cancelled', n, attempt,
        {json = jstr('by', latest), by = latest}, retention, 'collapsed')
      out[#out + 1] = 'skip'
      out[#out + 1] = 'cancelled'
      return
    end
  end
  if le(m[2], NOW_S) then
    ack_later(stream, entry)
    finish(mkey, id, user, 'queued', 'expired', n, attempt, nil, retention)
    out[#out + 1] = 'expired'
    return
  end
  local live = conns[user]
  if not live then
    local list = live_conns(user, hb_timeout)
    live = {list = list, to = ',"to":["' .. table.concat(list, '","') .. '"]'}
    conns[user] = live
  end
  if #live.list == 0 then
    ack_later(stream, entry)
    local h = redis.call('HMGET', mkey, F_CREATED_AT)
    park(mkey, id, user, 'queued', n, prio, tonumber(h[1]), tonumber(m[2]), attempt, park_ttl,
      entry)
    out[#out + 1] = 'parked'
    return
  end
  attempt = inc(attempt)
  set_status(mkey, user, 'queued', 'sent', n, attempt, nil, live.to, F_ATTEMPTS, attempt,
    F_ENTRY, entry)
  out[#out + 1] = 'sent'
  out[#out + 1] = attempt
  out[#out + 1] = #live.list
  for _, c in ipairs(live.list) do out[#out + 1] = c end
end
