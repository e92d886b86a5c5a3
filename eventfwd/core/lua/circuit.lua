-- circuit: each platform's circuit breaker, shared by the whole fleet. Prepended to every script
-- (eventfwd/core/ledger.py), so every script that touches the circuit calls these functions.
--
-- {p}:circuit:{platform} hash: state (open|closed), reason (outage|auth|not_found|config),
--   failures (contiguous transient failures), opened_ms, closed_ms, next_probe_ms,
--   last_probe_ms, probe_id (the one event a claim may send while open), last_status,
--   last_message.
-- Rules: more than `threshold` contiguous transient failures open it ('outage'); a platform-wide
-- answer (401/403/404, missing configuration) opens it at once; while it is open nothing is sent
-- but one probe per probe interval (released by the pump); a delivery closes it; any answer from
-- Moloco, even a refusal, resets the failure count and closes an 'outage' circuit.

local circuit_cache = {}

local function circuit_is_open(p, platform)
  local v = circuit_cache[platform]
  if v == nil then
    v = redis.call('HGET', key(p, 'circuit', platform), 'state') == 'open'
    circuit_cache[platform] = v
  end
  return v
end

-- Open it (or keep it open) for `why`, next probe one interval from now; 1 when this opened it.
local function circuit_open(p, platform, why, probe_ms, status, message, now)
  local ck = key(p, 'circuit', platform)
  local opened = 0
  if redis.call('HGET', ck, 'state') ~= 'open' then
    opened = 1
    redis.call('HSET', ck, 'state', 'open', 'reason', why, 'opened_ms', now, 'last_status', status,
      'last_message', message)
    redis.call('HINCRBY', key(p, 'stats'), 'circuit_opened', 1)
  end
  redis.call('HSET', ck, 'next_probe_ms', now + probe_ms)
  redis.call('HDEL', ck, 'probe_id')
  circuit_cache[platform] = true
  return opened
end

-- One more contiguous transient failure; 1 when it opened the circuit.
local function circuit_failure(p, platform, threshold, probe_ms, status, message, now)
  local failures = redis.call('HINCRBY', key(p, 'circuit', platform), 'failures', 1)
  if failures > threshold then
    return circuit_open(p, platform, 'outage', probe_ms, status, message, now)
  end
  return 0
end

-- Close it (a delivery, a delivered probe, an operator's reset); 1 when it was open. Its ready
-- events go back into the claim rotation; the pump releases what it parked in the schedule.
local function circuit_close(p, platform, now)
  local ck = key(p, 'circuit', platform)
  local c = redis.call('HMGET', ck, 'state', 'failures')
  local was_open = c[1] == 'open'
  circuit_cache[platform] = false
  if not was_open then
    -- the common case (every ack): write only when there is a failure count to reset
    if c[1] ~= 'closed' or (tonumber(c[2]) or 0) ~= 0 then
      redis.call('HSET', ck, 'state', 'closed', 'failures', 0)
    end
    return 0
  end
  redis.call('HSET', ck, 'state', 'closed', 'failures', 0)
  redis.call('HDEL', ck, 'probe_id')
  redis.call('HSET', ck, 'closed_ms', now)
  redis.call('HINCRBY', key(p, 'stats'), 'circuit_closed', 1)
  if redis.call('ZCARD', key(p, 'ready', platform)) > 0 then activate(p, platform) end
  return 1
end

-- Moloco answered (even with a refusal): the platform is up. 1 when this closed the circuit.
local function circuit_answered(p, platform, now)
  local ck = key(p, 'circuit', platform)
  local c = redis.call('HMGET', ck, 'state', 'reason')
  if c[1] == 'open' and c[2] == 'outage' then return circuit_close(p, platform, now) end
  redis.call('HSET', ck, 'failures', 0)
  return 0
end

-- The probe a claim may send while the circuit is open (nil when none is released).
local function circuit_probe_id(p, platform)
  local id = redis.call('HGET', key(p, 'circuit', platform), 'probe_id')
  if id then return id end
  return nil
end

-- Is a probe due? (one per probe interval, fleet-wide)
local function circuit_probe_due(p, platform, now)
  local next_probe = redis.call('HGET', key(p, 'circuit', platform), 'next_probe_ms')
  return now >= (tonumber(next_probe) or 0)
end

-- Release `id` as the probe; the next one is due one interval later.
local function circuit_release_probe(p, platform, id, probe_ms, now)
  redis.call('HSET', key(p, 'circuit', platform), 'probe_id', id, 'next_probe_ms', now + probe_ms,
    'last_probe_ms', now)
  count(p, 'probes', 1, now)
end
