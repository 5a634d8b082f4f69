-- The prelude's stream helpers (scripts.py appends them to _lib.lua): entries of the
-- priority streams, and the trim that removes what every consumer is done with.

-- A stream entry of a message (what a consumer reads): its id and user, and what the
-- message frame needs, so that dispatch neither reads nor answers them: the payload,
-- the creation time and, only when set, the collapse key, the topic, reply_requested
-- and keep. Returns the entry id.
local function add_entry(stream, id, user, payload, created, ck, tp, rr, keep)
  if not ck and not tp and rr ~= '1' and keep ~= '1' then
    return redis.call('XADD', stream, '*', ENTRY_MESSAGE, id, ENTRY_USER, user,
      ENTRY_PAYLOAD, payload, ENTRY_CREATED_AT, created)
  end
  local f = {ENTRY_MESSAGE, id, ENTRY_USER, user, ENTRY_PAYLOAD, payload, ENTRY_CREATED_AT,
    created}
  if ck then f[#f + 1] = ENTRY_COLLAPSE_KEY; f[#f + 1] = ck end
  if tp then f[#f + 1] = ENTRY_TOPIC; f[#f + 1] = tp end
  if rr == '1' then f[#f + 1] = ENTRY_REPLY_REQUESTED; f[#f + 1] = '1' end
  if keep == '1' then f[#f + 1] = ENTRY_KEEP; f[#f + 1] = '1' end
  return redis.call('XADD', stream, '*', unpack(f))
end

-- Put a message (back) in its priority stream, reading what the entry carries from its
-- hash (promote, hand-back, replay: the rare paths). Returns the entry id.
local function requeue(mkey, id, user, prio)
  local m = redis.call('HMGET', mkey, F_PAYLOAD, F_CREATED_AT, F_COLLAPSE_KEY, F_TOPIC,
    F_REPLY_REQUESTED, F_KEEP)
  return add_entry(key_stream(prio), id, user, m[1], m[2], m[3] or nil, m[4] or nil, m[5],
    m[6])
end

-- Remove the entries of `stream` that every consumer is done with. Entries are read in
-- the order of their ids, so every entry older than the oldest pending one (read, not
-- yet acknowledged: a dispatch in progress or a sent message's in-flight record) was
-- read and acknowledged; with nothing pending, every entry up to the last one read:
-- `top`, an entry the caller read or acknowledged, else the group's last delivered
-- entry. One XTRIM MINID; the stream holds the backlog and the entries from the oldest
-- one in flight on.
local function trim(stream, top)
  local pending = redis.pcall('XPENDING', stream, GROUP)
  if pending.err then return end  -- no group (lost: the readers make it again)
  local limit
  if pending[1] > 0 then
    limit = pending[2]
  else
    if not top then
      for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
        local name, last
        for i = 1, #g, 2 do
          if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then
            last = g[i + 1]
          end
        end
        if name == GROUP then top = last end
      end
      if not top or top == '0-0' then return end
    end
    local ms, seq = string.match(top, '^(%d+)%-(%d+)$')
    limit = ms .. '-' .. int(tonumber(seq) + 1)
  end
  redis.call('XTRIM', stream, 'MINID', limit)
end

-- Make the acknowledgements gathered so far (ACKS), then trim every stream a script
-- read from (`tops`: stream -> an entry it read) or acknowledged in, up to that entry
-- (dispatch, unpark, the retry, hand-back and reclaim scripts; an ack leaves the trim
-- to the next of these or to the scheduler's pass).
local function settle(tops)
  for stream, ids in pairs(ACKS) do
    xack(stream, ids)
    if not tops[stream] then tops[stream] = ids[#ids] end
  end
  ACKS = {}
  for stream, top in pairs(tops) do trim(stream, top) end
end
