-- enqueue: accept events into the ledger and make them ready, in one atomic step.
-- KEYS: none (keys are built from ARGV[1], see _lib.lua; Redis Cluster is not supported)
-- ARGV (EnqueueArgs in eventfwd/core/ledger.py): 1 prefix, 2 queue, 3 deliver task name,
--       4 wake_ms (how long a wake-up message counts as pending), 5 lane ('live', or 'backlog'
--       for a backfill: claimed behind every live event of its platform),
--       then 4 values per event: id, platform, body (wire JSON), event_ms
-- Returns: one integer per event: 1 accepted, 0 already in the ledger (left untouched),
--          2 delivered recently (done record present, nothing written)
-- An accepted event is ready in the live lane and its platform joins the claim rotation; the
-- bell wakes an idle delivery engine. While the platform's circuit is open the event is parked
-- in the schedule instead (backlog lane); the pump releases it after the outage. No Celery
-- message per event: only when no delivery engine is alive anywhere is one wake-up published.
local p, queue, task = ARGV[1], ARGV[2], ARGV[3]
local wake_ms, backfill = tonumber(ARGV[4]), ARGV[5] == 'backlog'
local now = now_ms()
local ev_prefix, done_prefix = key(p, 'ev') .. ':', key(p, 'done') .. ':'
local out, parked, accepted, zadds = {}, {}, {}, {}
for i = 6, #ARGV, 4 do
  local id, platform, body, event_ms = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local ev = ev_prefix .. id
  -- one EXISTS asks about both keys (the common answer is neither)
  if redis.call('EXISTS', ev, done_prefix .. id) > 0 then
    out[#out + 1] = redis.call('EXISTS', ev) == 1 and 0 or 2
  else
    if parked[platform] == nil then
      parked[platform] = circuit_is_open(p, platform)
      redis.call('SADD', key(p, 'platforms'), platform)
      zadds[platform] = {}
    end
    if parked[platform] then
      redis.call('HSET', ev, 'body', body, 'platform', platform, 'state', 'scheduled',
        'attempts', 0, 'enqueued_ms', now, 'event_ms', event_ms, 'lane', 'backlog')
    elseif backfill then
      redis.call('HSET', ev, 'body', body, 'platform', platform, 'state', 'ready', 'attempts', 0,
        'enqueued_ms', now, 'event_ms', event_ms, 'lane', 'backlog')
    else
      redis.call('HSET', ev, 'body', body, 'platform', platform, 'state', 'ready', 'attempts', 0,
        'enqueued_ms', now, 'event_ms', event_ms)
    end
    local z = zadds[platform]
    z[#z + 1] = (backfill and not parked[platform]) and lane_score('backlog', now) or now
    z[#z + 1] = id
    accepted[platform] = (accepted[platform] or 0) + 1
    out[#out + 1] = 1
  end
end
-- ZADD in slices: unpack() is bounded by Lua's stack (LUAI_MAXCSTACK, 8000 values).
for platform, z in pairs(zadds) do
  local set = key(p, parked[platform] and 'sched' or 'ready', platform)
  for first = 1, #z, 1000 do
    redis.call('ZADD', set, unpack(z, first, math.min(first + 999, #z)))
  end
  if not parked[platform] then redis.call('ZADD', key(p, 'active'), 0, platform) end
end
for platform, n in pairs(accepted) do count_both(p, platform, 'enqueued', n, now) end
-- Ring the bell (at most one ring waits). A ring still waiting means no engine took the last
-- one: then see whether any is alive at all, and publish a Celery wake-up when none is.
local ready_now = false
for platform in pairs(accepted) do
  if not parked[platform] then ready_now = true end
end
if ready_now then
  local bell = key(p, 'bell')
  if redis.call('LLEN', bell) == 0 then
    redis.call('RPUSH', bell, 1)
  else
    wake_if_no_engine(p, queue, task, wake_ms, now)
  end
end
return out
