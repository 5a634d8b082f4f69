-- dispatch_one(...): one read stream entry (dispatch.lua, dispatch_many.lua). Arguments
-- and answer as documented in dispatch.lua; the durations are numbers. The answer is
-- a table per entry (its first item the outcome, DispatchOutcome in delivery/calls.py). The entry is
-- noted in `done` (stream -> entry ids) for settle(), which acknowledges and removes
-- the entries of the whole call at its end; `conns` caches users' live connections.
local function dispatch_one(entry, id, user, prio, ack_timeout, hb_timeout, park_ttl,
    retention, done, conns)
  local stream = key_stream(prio)
  local ids = done[stream]
  if not ids then
    ids = {}
    done[stream] = ids
  end
  ids[#ids + 1] = entry
  local mkey = key_msg(id)
  local m = redis.call('HMGET', mkey, F_STATUS, F_EXPIRES_AT, F_ATTEMPTS, F_PAYLOAD,
    F_CREATED_AT, F_COLLAPSE_KEY, F_TOPIC, F_REPLY_REQUESTED, F_KEEP, F_EVENTS)
  local status, expires, payload, created = m[1], tonumber(m[2]), m[4], m[5]
  local ck, tp, rr, keep, n = m[6], m[7], m[8], m[9], m[10]
  if not status then return {'skip', 'gone'} end
  if status ~= 'queued' then return {'skip', status} end
  local attempt = tonumber(m[3])
  if ck and keep ~= '1' then
    -- a newer message with the same collapse key came while this one was on its way
    -- (sent, then retried): the newer one wins, this one is never shown after it
    local latest = redis.call('GET', key_collapse(user, ck))
    if latest and latest ~= id then
      finish(mkey, id, user, 'queued', 'cancelled', n, attempt, {by = latest}, retention,
        'collapsed')
      return {'skip', 'cancelled'}
    end
  end
  if NOW >= expires then
    finish(mkey, id, user, 'queued', 'expired', n, attempt, nil, retention)
    return {'expired'}
  end
  local live = conns[user]
  if not live then
    live = live_conns(user, hb_timeout)
    conns[user] = live
  end
  if #live == 0 then
    park(mkey, id, user, 'queued', n, prio, tonumber(created), expires, attempt, park_ttl,
      entry)
    return {'parked'}
  end
  attempt = attempt + 1
  set_status(mkey, user, 'queued', 'sent', n, attempt, nil, {to = live}, F_ATTEMPTS, attempt)
  INFLIGHT_ADD[#INFLIGHT_ADD + 1] = NOW + ack_timeout
  INFLIGHT_ADD[#INFLIGHT_ADD + 1] = id
  local out = {'sent', attempt, payload, created, ck or '', tp or '', rr or '0'}
  for _, c in ipairs(live) do out[#out + 1] = c end
  return out
end

-- Stream entry ids compare as (milliseconds, sequence).
local function entry_before(a, b)
  local am, as = string.match(a, '^(%d+)%-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)%-(%d+)$')
  am, bm = tonumber(am), tonumber(bm)
  return am < bm or (am == bm and tonumber(as) < tonumber(bs))
end

-- Acknowledge the dispatched entries of each stream and remove them from it. All were
-- pending (XACK counts them), so every older entry of the stream was read already;
-- XTRIM MINID drops everything older than both the oldest entry still pending (read
-- by a consumer, not yet dispatched: never trimmed) and the newest one dispatched
-- here, in one step per stream. Entries of this call above that point (another
-- consumer holds an older one) are deleted one by one, as are all of them when some
-- were not pending (a duplicate, or an entry dispatched twice), and a lone entry
-- (XDEL costs less than XPENDING + XTRIM for one).
local function settle(group, done)
  for stream, ids in pairs(done) do
    local acked = redis.call('XACK', stream, group, unpack(ids))
    local rest = ids
    if acked == #ids and #ids > 1 then
      local top = ids[1]
      for i = 2, #ids do
        if entry_before(top, ids[i]) then top = ids[i] end
      end
      local ms, seq = string.match(top, '^(%d+)%-(%d+)$')
      local limit = ms .. '-' .. string.format('%d', tonumber(seq) + 1)
      local pending = redis.call('XPENDING', stream, group)
      if pending[1] > 0 and entry_before(pending[2], limit) then limit = pending[2] end
      redis.call('XTRIM', stream, 'MINID', limit)
      rest = {}
      for _, e in ipairs(ids) do
        if not entry_before(e, limit) then rest[#rest + 1] = e end
      end
    end
    if #rest > 0 then call_chunked('XDEL', stream, rest, 1000) end
  end
end
