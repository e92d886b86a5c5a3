-- reschedule: a claimed event was not delivered and will be tried again later.
-- One transition (inflight -> scheduled, or -> dead when the attempt budget is spent) with its
-- effect on the platform: transient failures count towards opening the circuit, a 429 slows the
-- shared send rate and pauses the platform, a platform-wide error opens the circuit at once.
-- Nothing spends the attempt budget while the circuit is open (events are kept, not dead).
-- KEYS: none (built from ARGV[1])
-- ARGV: 1 prefix, 2 id, 3 token, 4 kind ('transient' | 'throttled' | 'blocked'),
--       5 delay_ms (until the next try), 6 max_attempts, 7 failure threshold,
--       8 probe_ms, 9 circuit reason (for 'blocked'), 10 status, 11 message, 12 history record,
--       13 configured rate per second (for 'throttled'), 14 pause_ms (for 'throttled')
-- Returns: {action, circuit_opened}: action 'retry', 'parked', 'dead' or 'lost' (lease not ours)
local p, id, token, kind = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local delay_ms, max_attempts = tonumber(ARGV[5]), tonumber(ARGV[6])
local threshold, probe_ms, reason = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
local status, message, record = ARGV[10], ARGV[11], ARGV[12]
local ev = key(p, 'ev', id)
local f = redis.call('HMGET', ev, 'state', 'token', 'platform', 'attempts')
if f[1] ~= 'inflight' or f[2] ~= token then return {'lost', 0} end
local platform, attempts = f[3], tonumber(f[4]) or 0
local now = now_ms()
local ck = key(p, 'circuit', platform)
local stats = key(p, 'stats')
add_history(ev, record)
redis.call('HDEL', ev, 'token', 'probe')
redis.call('HSET', ev, 'last_status', status, 'last_message', message)

local opened = 0
local function open_circuit(why)
  if redis.call('HGET', ck, 'state') ~= 'open' then
    opened = 1
    redis.call('HSET', ck, 'state', 'open', 'reason', why, 'opened_ms', now, 'last_status', status,
      'last_message', message)
    redis.call('HINCRBY', stats, 'circuit_opened', 1)
  end
  redis.call('HSET', ck, 'next_probe_ms', now + probe_ms)
end

if kind == 'throttled' then
  local cfg_rate, pause_ms = tonumber(ARGV[13]), tonumber(ARGV[14])
  local rk = key(p, 'rate', platform)
  local r = redis.call('HMGET', rk, 'rate', 'paused_until_ms', 'decreased_ms')
  local rate = tonumber(r[1]) or cfg_rate
  -- multiplicative decrease, at most once a second: 429s answered to requests that were already
  -- on their way report the same congestion. Floor: one request every ten seconds.
  if now - (tonumber(r[3]) or 0) >= 1000 then
    rate = math.max(0.1, rate / 2)
    redis.call('HSET', rk, 'rate', rate, 'rate_ms', now, 'decreased_ms', now)
  end
  local paused = math.max(tonumber(r[2]) or 0, now + pause_ms)
  redis.call('HSET', rk, 'paused_until_ms', paused)
  count_both(p, platform, 'throttled', 1, now)
  redis.call('HSET', ev, 'state', 'scheduled')
  redis.call('ZADD', key(p, 'sched', platform), paused, id)
  return {'retry', 0}
end

count_both(p, platform, 'failed', 1, now)
count_platform(p, platform, 'failed:' .. status_class(status), 1, now)
if kind == 'blocked' then
  open_circuit(reason)
elseif kind == 'transient' then
  local failures = redis.call('HINCRBY', ck, 'failures', 1)
  if failures > threshold then open_circuit('outage') end
end

if redis.call('HGET', ck, 'state') == 'open' then
  -- parked: the pump leaves an open platform alone but for one probe per probe interval
  redis.call('HSET', ev, 'state', 'scheduled')
  redis.call('ZADD', key(p, 'sched', platform), now, id)
  count_both(p, platform, 'parked', 1, now)
  return {'parked', opened}
end
attempts = attempts + 1
redis.call('HSET', ev, 'attempts', attempts)
if attempts >= max_attempts then
  to_dead(p, id, ev, platform, 'retries_exhausted', status, message, now)
  return {'dead', opened}
end
redis.call('HSET', ev, 'state', 'scheduled')
redis.call('ZADD', key(p, 'sched', platform), now + delay_ms, id)
count_both(p, platform, 'retried', 1, now)
return {'retry', opened}
