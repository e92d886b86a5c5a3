-- pump: the periodic sweep of every platform's schedule. Publishes due retries, republishes ids
-- whose message was lost (republish deadline passed), reaps expired leases (a worker died) and
-- dead-letters an event whose leases expired too often (poison). An open circuit is left alone
-- but for one probe per probe interval, fleet-wide. Release per platform is capped by its rate.
-- KEYS: none (built from ARGV[1])
-- ARGV: 1 prefix, 2 queue, 3 task, 4 lease_ms, 5 max ids per platform per call, 6 ids per message,
--       7 poison threshold, 8 queue high-water (no republish of lost messages above it),
--       9 probe_ms, 10 default rate per second, 11 pump interval ms
-- Returns: {published, reaped, poisoned, probes, more, {poisoned id, platform, ...}}:
--          more = 1 when a platform had more due
local p, queue, task = ARGV[1], ARGV[2], ARGV[3]
local lease_ms, limit, per_msg = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local poison, high_water, probe_ms = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local default_rate, interval_ms = tonumber(ARGV[10]), tonumber(ARGV[11])
local now = now_ms()
local queue_len = redis.call('LLEN', queue)
local out = {published = 0, reaped = 0, poisoned = 0, probes = 0, more = 0}
local ready, poisoned = {}, {}

local function reap(id, ev, platform)
  out.reaped = out.reaped + 1
  local n = redis.call('HINCRBY', ev, 'lease_expiries', 1)
  redis.call('HDEL', ev, 'token', 'probe')
  if n >= poison then
    out.poisoned = out.poisoned + 1
    poisoned[#poisoned + 1] = id
    poisoned[#poisoned + 1] = platform
    to_dead(p, id, ev, platform, 'poison', '', 'the worker holding it died ' .. n .. ' times', now)
    return false
  end
  return true
end

for _, platform in ipairs(redis.call('SMEMBERS', key(p, 'platforms'))) do
  local sched = key(p, 'sched', platform)
  local ck = key(p, 'circuit', platform)
  local c = redis.call('HMGET', ck, 'state', 'next_probe_ms')
  if c[1] == 'open' then
    -- reap dead leases into the parked set; release one probe when it is time
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', sched, '-inf', now, 'LIMIT', 0, limit)) do
      local ev = key(p, 'ev', id)
      local state = redis.call('HGET', ev, 'state')
      if not state then
        redis.call('ZREM', sched, id)
      elseif state == 'inflight' then
        if reap(id, ev, platform) then redis.call('HSET', ev, 'state', 'scheduled') end
      elseif state == 'queued' then
        redis.call('HSET', ev, 'state', 'scheduled')
      end
    end
    if now >= (tonumber(c[2]) or 0) then
      local first = redis.call('ZRANGEBYSCORE', sched, '-inf', '+inf', 'LIMIT', 0, 8)
      for _, id in ipairs(first) do
        local ev = key(p, 'ev', id)
        if redis.call('HGET', ev, 'state') == 'scheduled' then
          redis.call('HSET', ev, 'state', 'queued', 'probe', 1)
          redis.call('ZADD', sched, now + lease_ms, id)
          redis.call('HSET', ck, 'next_probe_ms', now + probe_ms, 'last_probe_ms', now)
          publish(p, queue, task, {id}, true)
          out.probes = out.probes + 1
          count(p, 'probes', 1, now)
          break
        end
      end
    end
  else
    local rate = tonumber(redis.call('HGET', key(p, 'rate', platform), 'rate')) or default_rate
    local cap = math.min(limit, math.max(1, math.ceil(rate * interval_ms / 1000 * 2)))
    local due = redis.call('ZRANGEBYSCORE', sched, '-inf', now, 'LIMIT', 0, cap)
    if #due >= cap then out.more = 1 end
    for _, id in ipairs(due) do
      local ev = key(p, 'ev', id)
      local state = redis.call('HGET', ev, 'state')
      local go = false
      if not state then
        redis.call('ZREM', sched, id)
      elseif state == 'scheduled' then
        go = true
      elseif state == 'inflight' then
        go = reap(id, ev, platform)
      elseif state == 'queued' then
        -- the message may just be waiting behind a long queue: only republish when it is short
        go = queue_len < high_water
        if not go then redis.call('ZADD', sched, now + lease_ms, id) end
      end
      if go then
        redis.call('HSET', ev, 'state', 'queued')
        redis.call('ZADD', sched, now + lease_ms, id)
        ready[#ready + 1] = id
      end
    end
  end
end
if #ready > 0 then publish_all(p, queue, task, ready, per_msg, true) end
out.published = #ready
return {out.published, out.reaped, out.poisoned, out.probes, out.more, poisoned}
