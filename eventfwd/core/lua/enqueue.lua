-- enqueue: accept events into the ledger and publish their ids, in one atomic step.
-- KEYS: none (keys are built from ARGV[1], see _lib.lua; Redis Cluster is not supported)
-- ARGV: 1 prefix, 2 queue, 3 task name, 4 lease_ms, 5 ids per message,
--       then 4 values per event: id, platform, body (wire JSON), event_ms
-- Returns: one integer per event: 1 accepted, 0 already in the ledger (left untouched),
--          2 delivered recently (done marker present, nothing written)
-- Every call to Redis costs a few microseconds here, most of an event's cost: one EXISTS asks
-- about both keys (the common answer is neither), and each platform's schedule takes one ZADD.
local p, queue, task = ARGV[1], ARGV[2], ARGV[3]
local lease_ms, per_msg = tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
local ev_prefix, done_prefix = key(p, 'ev') .. ':', key(p, 'done') .. ':'
local out, ready, open, accepted, scheduled = {}, {}, {}, {}, {}
for i = 6, #ARGV, 4 do
  local id, platform, body, event_ms = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local ev = ev_prefix .. id
  if redis.call('EXISTS', ev, done_prefix .. id) > 0 then
    out[#out + 1] = redis.call('EXISTS', ev) == 1 and 0 or 2
  else
    if open[platform] == nil then
      open[platform] = redis.call('HGET', key(p, 'circuit', platform), 'state') == 'open'
      redis.call('SADD', key(p, 'platforms'), platform)
      scheduled[platform] = {}
    end
    local state, score = 'queued', now + lease_ms
    -- While the platform's circuit is open the event is parked; the pump releases it later.
    if open[platform] then state, score = 'scheduled', now end
    redis.call('HSET', ev, 'body', body, 'platform', platform, 'state', state, 'attempts', 0,
      'enqueued_ms', now, 'event_ms', event_ms)
    local zargs = scheduled[platform]
    zargs[#zargs + 1] = score
    zargs[#zargs + 1] = id
    if state == 'queued' then ready[#ready + 1] = id end
    accepted[platform] = (accepted[platform] or 0) + 1
    out[#out + 1] = 1
  end
end
-- ZADD in slices: unpack() is bounded by Lua's stack (LUAI_MAXCSTACK, 8000 values).
for platform, zargs in pairs(scheduled) do
  local sched = key(p, 'sched', platform)
  for first = 1, #zargs, 1000 do
    redis.call('ZADD', sched, unpack(zargs, first, math.min(first + 999, #zargs)))
  end
end
if #ready > 0 then publish_all(p, queue, task, ready, per_msg) end
for platform, n in pairs(accepted) do count_both(p, platform, 'enqueued', n, now) end
return out
