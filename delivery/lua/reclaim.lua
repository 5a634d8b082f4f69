-- reclaim: the entries of the partition's consumer group that have been pending longer
-- than the ack timeout, claimed by this consumer (XAUTOCLAIM) and sorted out. One
-- mechanism finds both kinds:
--   * a queued message whose entry a consumer read and never dispatched (it died):
--     handed back to be dispatched (the claim makes this consumer's pending entry its
--     in-flight record), or dead-lettered as poison once claimed more than the poison
--     limit;
--   * a sent message whose in-flight record waited past the ack timeout: answered,
--     for the caller to retry it with its backoff delay (retry.lua);
--   anything else (the message moved on, or its hash is gone) is acknowledged.
-- KEYS[1] partition prefix (P)
-- How each stream is scanned (its cursor): entries are read in the order of their ids,
-- so the oldest pending entry is the one idle longest unless a claim refreshed an
-- older one; '' (the usual pass) looks at that first entry only (one cheap read) and
-- claims from the start when it is overdue; an entry id goes on with a scan of the
-- whole pending list from there ('0-0' starts one: the caller does so now and then, for
-- what claims hid). A scan that reaches the end answers '' again.
-- ARGV: 1 consumer, 2 min idle ms (the ack timeout), 3 count per stream, 4 poison
--   deliveries, 5 dlq max length, 6 dead keep ms, then the cursor of each stream
--   (high, normal, low, drained)
-- Returns a flat list: the 4 next cursors; n, then n overdue messages (id, in-flight
-- record, attempts made); m, then m entries to dispatch (priority, entry id, deliveries
-- counted, the number of field items k, k items); b, then b poison entries buried
-- (entry id, message id).
-- (delivery/calls.py: Reclaim)
local consumer, min_idle, count = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local poison, dlq_max, dead_keep = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local FIRST_CURSOR = 7
-- (XAUTOCLAIM is a write Redis does not refuse when it is full: refused here, so that
-- while it is, no delivery is counted and nothing is dispatched or buried)
refuse_when_full()
local streams = {{'high', key_stream('high')}, {'normal', key_stream('normal')},
  {'low', key_stream('low')}, {'drained', key_drained()}}
local cursors, overdue, dispatch, buried = {}, {}, {}, {}
local entries = 0
for s, st in ipairs(streams) do
  local name, stream = st[1], st[2]
  local cursor = ARGV[FIRST_CURSOR + s - 1]
  if cursor == '' then
    local first = redis.pcall('XPENDING', stream, GROUP, '-', '+', 1)
    if not first.err and #first > 0 and first[1][3] >= min_idle then cursor = '0-0' end
  end
  local claimed = {}
  if cursor ~= '' then
    local got = redis.pcall('XAUTOCLAIM', stream, GROUP, consumer, min_idle, cursor,
      'COUNT', count)
    if got.err then got = {'0-0', {}} end  -- no group (lost: the readers make it again)
    cursor, claimed = got[1], got[2]
    if cursor == '0-0' then cursor = '' end
  end
  cursors[s] = cursor
  local times = {}
  if #claimed > 0 and name ~= 'drained' then
    local rows = redis.call('XPENDING', stream, GROUP, claimed[1][1], claimed[#claimed][1],
      #claimed * 2, consumer)
    for _, r in ipairs(rows) do times[r[1]] = r[4] end
  end
  for _, e in ipairs(claimed) do
    local entry, f = e[1], e[2]
    local id, user
    for i = 1, #f, 2 do
      if f[i] == ENTRY_MESSAGE then id = f[i + 1] elseif f[i] == ENTRY_USER then
        user = f[i + 1]
      end
    end
    local mkey = id and key_msg(id)
    local m = mkey and redis.call('HMGET', mkey, F_STATUS, F_ENTRY, F_ATTEMPTS, F_EVENTS)
      or {}
    local status = m[1]
    local record = (name == 'drained') and ('d' .. entry) or entry
    if status == 'sent' and m[2] == record then
      overdue[#overdue + 1] = id
      overdue[#overdue + 1] = record
      overdue[#overdue + 1] = m[3] or '0'
    elseif status == 'queued' and name ~= 'drained' then
      if (times[entry] or 1) > poison then
        ack_later(stream, entry)
        bury(mkey, id, user, 'queued', m[4], m[3], 'poison', dlq_max, dead_keep)
        buried[#buried + 1] = entry
        buried[#buried + 1] = id
      else
        entries = entries + 1
        dispatch[#dispatch + 1] = name
        dispatch[#dispatch + 1] = entry
        dispatch[#dispatch + 1] = times[entry] or 1
        dispatch[#dispatch + 1] = #f
        for _, v in ipairs(f) do dispatch[#dispatch + 1] = v end
      end
    else
      ack_later(stream, entry)
    end
  end
end
settle({})
local out = cursors
out[#out + 1] = #overdue / 3
for _, v in ipairs(overdue) do out[#out + 1] = v end
out[#out + 1] = entries
for _, v in ipairs(dispatch) do out[#out + 1] = v end
out[#out + 1] = #buried / 2
for _, v in ipairs(buried) do out[#out + 1] = v end
return out
