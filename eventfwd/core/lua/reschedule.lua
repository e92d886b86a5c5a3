-- reschedule: a claimed event was not delivered and will be tried again later.
-- One transition (inflight -> scheduled, or -> dead when the attempt budget is spent) with its
-- effect on the platform: a transient failure counts towards opening the circuit and halves the
-- in-flight cap, a 429 slows the shared send rate, pauses the platform and halves the cap, a
-- platform-wide error opens the circuit at once. Nothing spends the attempt budget while the
-- circuit is open: the event is parked in the schedule (backlog lane), kept, not dead.
-- KEYS: none (built from ARGV[1])
-- ARGV (RescheduleArgs in eventfwd/core/ledger.py): 1 prefix, 2 id, 3 token,
--       4 kind ('transient' | 'throttled' | 'blocked'), 5 delay_ms (until the next try),
--       6 max_attempts, 7 failure threshold, 8 probe_ms, 9 circuit reason (for 'blocked'),
--       10 status, 11 message, 12 history record, 13 configured rate per second (for
--       'throttled'), 14 pause_ms (for 'throttled'), 15 concurrency initial, 16 concurrency min,
--       17 concurrency max, 18 rtt_ms (the attempt's round trip, for the histogram; -1: none)
-- Returns: {action, circuit_opened}: action 'retry', 'parked', 'dead' or 'lost' (lease not ours)
local p, id, token, kind = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local delay_ms, max_attempts = tonumber(ARGV[5]), tonumber(ARGV[6])
local threshold, probe_ms, reason = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
local status, message, record = ARGV[10], ARGV[11], ARGV[12]
local cfg = {initial = tonumber(ARGV[15]), min = tonumber(ARGV[16]), max = tonumber(ARGV[17])}
local ev = key(p, 'ev', id)
local f = redis.call('HMGET', ev, 'state', 'token', 'platform', 'attempts')
if f[1] ~= 'inflight' or f[2] ~= token then return {'lost', 0} end
local platform, attempts = f[3], tonumber(f[4]) or 0
local now = now_ms()
add_history(ev, record)
hist_rtt(platform, status, tonumber(ARGV[18]))
hist_flush(p)
redis.call('HDEL', ev, 'token', 'probe')
redis.call('HSET', ev, 'last_status', status, 'last_message', message)

if kind == 'throttled' then
  local paused = rate_throttled(p, platform, tonumber(ARGV[13]), tonumber(ARGV[14]), now)
  conc_failure(p, platform, cfg, now)
  count_both(p, platform, 'throttled', 1, now)
  make_scheduled(p, id, ev, platform, paused)
  return {'retry', 0}
end

count_failed(p, platform, status, now)
local opened = 0
if kind == 'blocked' then
  opened = circuit_open(p, platform, reason, probe_ms, status, message, now)
elseif kind == 'transient' then
  conc_failure(p, platform, cfg, now)
  opened = circuit_failure(p, platform, threshold, probe_ms, status, message, now)
end

if circuit_is_open(p, platform) then
  -- parked: the pump leaves an open platform alone but for one probe per probe interval
  park(p, id, ev, platform, now)
  count_both(p, platform, 'parked', 1, now)
  return {'parked', opened}
end
attempts = attempts + 1
redis.call('HSET', ev, 'attempts', attempts)
if attempts >= max_attempts then
  to_dead(p, id, ev, platform, 'retries_exhausted', status, message, now)
  return {'dead', opened}
end
make_scheduled(p, id, ev, platform, now + delay_ms)
count_both(p, platform, 'retried', 1, now)
return {'retry', opened}
