-- pump: the periodic sweep of every platform (beat, every pump interval). It makes due events
-- ready, recovers expired leases (a worker died) and dead-letters an event whose leases expired
-- too often (poison), parks an open platform's ready events and releases its probe (one per
-- probe interval, fleet-wide), forgets platforms with nothing left, and publishes a Celery
-- wake-up when events are ready but no delivery engine is alive.
-- KEYS: none (built from ARGV[1])
-- ARGV (PumpArgs in eventfwd/core/ledger.py): 1 prefix, 2 queue, 3 deliver task name,
--       4 max ids per platform per set per run, 5 poison threshold, 6 probe_ms, 7 wake_ms
-- Returns: {moved, reaped, poisoned, probes, more, {poisoned id, platform, ...}}: moved = events
--          made ready; more = 1 when a platform had more due than one run takes
local p, queue, task = ARGV[1], ARGV[2], ARGV[3]
local limit, poison = tonumber(ARGV[4]), tonumber(ARGV[5])
local probe_ms, wake_ms = tonumber(ARGV[6]), tonumber(ARGV[7])
local now = now_ms()
local out = {moved = 0, reaped = 0, poisoned = 0, probes = 0, more = 0}
local poisoned, any_ready = {}, false

-- An expired lease: count it, dead-letter a poison event, else put it back to be sent again.
local function reap(id, ev, platform, lane)
  out.reaped = out.reaped + 1
  local n = redis.call('HINCRBY', ev, 'lease_expiries', 1)
  redis.call('HDEL', ev, 'token', 'probe')
  if n >= poison then
    out.poisoned = out.poisoned + 1
    poisoned[#poisoned + 1] = id
    poisoned[#poisoned + 1] = platform
    to_dead(p, id, ev, platform, 'poison', '', 'the worker holding it died ' .. n .. ' times', now)
  elseif circuit_is_open(p, platform) then
    park(p, id, ev, platform, now)
  else
    make_ready(p, id, ev, platform, lane, now)
    return true
  end
  return false
end

for _, platform in ipairs(redis.call('SMEMBERS', key(p, 'platforms'))) do
  -- operators' views list the platforms that had anything in the ledger in the last days
  redis.call('ZADD', key(p, 'seen'), now, platform)
  local ready, sched = key(p, 'ready', platform), key(p, 'sched', platform)
  local inflight = key(p, 'inflight', platform)
  local woke = false
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', inflight, '-inf', now, 'LIMIT', 0, limit)) do
    local ev = key(p, 'ev', id)
    -- one read: a gone envelope has no state
    local state, lane = unpack(redis.call('HMGET', ev, 'state', 'lane'))
    if not state then
      redis.call('ZREM', inflight, id)
    elseif reap(id, ev, platform, lane) then
      woke = true
    end
  end

  local paused = redis.call('EXISTS', key(p, 'pause', platform)) == 1
  if circuit_is_open(p, platform) then
    -- park what is ready (the probe excepted) until the outage is over
    local probe = circuit_probe_id(p, platform)
    for _, id in ipairs(redis.call('ZRANGE', ready, 0, limit - 1)) do
      if id ~= probe then
        local ev = key(p, 'ev', id)
        park(p, id, ev, platform, now)
      end
    end
    if circuit_probe_due(p, platform, now) then
      local first = redis.call('ZRANGE', sched, 0, 0)[1]
      if first then
        local ev = key(p, 'ev', first)
        redis.call('HSET', ev, 'probe', 1)
        make_ready(p, first, ev, platform, 'live', 0)
        circuit_release_probe(p, platform, first, probe_ms, now)
        out.probes = out.probes + 1
        woke = true
      end
    end
  elseif not paused then
    local due = redis.call('ZRANGEBYSCORE', sched, '-inf', now, 'LIMIT', 0, limit)
    if #due >= limit then out.more = 1 end
    for _, id in ipairs(due) do
      local ev = key(p, 'ev', id)
      local f = redis.call('HMGET', ev, 'state', 'lane')
      if not f[1] then
        redis.call('ZREM', sched, id)
      elseif f[1] == 'inflight' then
        -- a lease recorded in the schedule by an earlier version: it has expired
        if reap(id, ev, platform, f[2]) then woke = true end
      elseif f[1] == 'dead' then
        redis.call('ZREM', sched, id)
      else
        make_ready(p, id, ev, platform, f[2], now)
        out.moved = out.moved + 1
        woke = true
      end
    end
  end
  if woke then activate(p, platform) end

  local nready = redis.call('ZCARD', ready)
  if nready > 0 and not paused then any_ready = true end
  if nready + redis.call('ZCARD', sched) + redis.call('ZCARD', inflight) == 0 and not paused
      and not circuit_is_open(p, platform) then
    -- nothing waiting: forget it until its next event (enqueue adds it again)
    redis.call('SREM', key(p, 'platforms'), platform)
    redis.call('ZREM', key(p, 'active'), platform)
  end
end

-- operators' views list platforms seen in the last days; forget the long silent ones
redis.call('ZREMRANGEBYSCORE', key(p, 'seen'), '-inf', now - 30 * 86400000)
if any_ready then wake_if_no_engine(p, queue, task, wake_ms, now) end
return {out.moved, out.reaped, out.poisoned, out.probes, out.more, poisoned}
