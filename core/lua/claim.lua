-- claim: take one event for delivery under a lease (compare-and-set), or say why not.
-- Also enforces the platform's circuit (park unless this is the probe) and its shared send rate
-- (GCRA with one second of burst: an event over the rate goes back to the schedule, due when
-- the next token is, and the pump releases the schedule at the rate; no slot is reserved, so a
-- long queue of messages cannot book the future ahead of the events already due).
-- KEYS: none (built from ARGV[1])
-- ARGV: 1 prefix, 2 id, 3 token, 4 lease_ms, 5 default rate per second,
--       6 per-platform rate overrides 'KEY=rate,KEY=rate' (KEY: platform id upper-cased, every
--       character outside A-Z0-9 replaced by '_', as in EVENTFWD_PLATFORM_<KEY>_...),
--       7 poison threshold (taking over an expired lease counts like the pump's reaping)
-- Returns: {'ok', body, platform, attempts, enqueued_ms, event_ms, replays, probe}
--       or {'gone'} (not in the ledger), {'delivered'}, {'dead'}, {'busy'} (another lease holds it),
--          {'notdue', due_ms}, {'parked'} (circuit open), {'throttled', due_ms}
local p, id, token = ARGV[1], ARGV[2], ARGV[3]
local lease_ms, cfg_rate = tonumber(ARGV[4]), tonumber(ARGV[5])
local ev = key(p, 'ev', id)
local f = redis.call('HMGET', ev, 'state', 'platform', 'probe')
local state, platform = f[1], f[2]
if not state then
  if redis.call('EXISTS', key(p, 'done', id)) == 1 then return {'delivered'} end
  return {'gone'}
end
if state == 'dead' then return {'dead'} end
local now = now_ms()
local sched = key(p, 'sched', platform)
local score = tonumber(redis.call('ZSCORE', sched, id) or '0')
if state == 'inflight' and score > now then return {'busy'} end
if state == 'scheduled' and score > now then return {'notdue', score} end
if state == 'inflight' then
  local n = redis.call('HINCRBY', ev, 'lease_expiries', 1)
  if n >= tonumber(ARGV[7]) then
    to_dead(p, id, ev, platform, 'poison', '', 'the worker holding it died ' .. n .. ' times', now)
    return {'dead'}
  end
end

local probe = f[3] == '1'
if redis.call('HGET', key(p, 'circuit', platform), 'state') == 'open' and not probe then
  redis.call('HSET', ev, 'state', 'scheduled')
  redis.call('HDEL', ev, 'token')
  redis.call('ZADD', sched, now, id)
  return {'parked'}
end

if not probe then
  local pkey = string.gsub(string.upper(platform), '[^A-Z0-9]', '_')
  for k, v in string.gmatch(ARGV[6], '([^,=]+)=([^,]+)') do
    if k == pkey then cfg_rate = tonumber(v) end
  end
  local rk = key(p, 'rate', platform)
  local r = redis.call('HMGET', rk, 'rate', 'rate_ms', 'tat_ms', 'paused_until_ms')
  local rate = tonumber(r[1]) or cfg_rate
  local rate_ms = tonumber(r[2]) or now
  -- additive recovery towards the configured rate: back to full within about a minute
  rate = math.min(cfg_rate, rate + cfg_rate / 60 * math.max(0, now - rate_ms) / 1000)
  local tat = math.max(tonumber(r[3]) or now, now)
  local paused_until = tonumber(r[4]) or 0
  local interval = 1000 / rate
  local due = nil
  if paused_until > now then
    due = paused_until
  elseif tat - now > 1000 then
    due = tat - 1000
  else
    tat = tat + interval
  end
  redis.call('HSET', rk, 'rate', rate, 'rate_ms', now, 'tat_ms', tat)
  if due then
    redis.call('HSET', ev, 'state', 'scheduled')
    redis.call('HDEL', ev, 'token')
    redis.call('ZADD', sched, due, id)
    count_both(p, platform, 'throttled_local', 1, now)
    return {'throttled', due}
  end
end

redis.call('HSET', ev, 'state', 'inflight', 'token', token)
redis.call('ZADD', sched, now + lease_ms, id)
local g = redis.call('HMGET', ev, 'body', 'attempts', 'enqueued_ms', 'event_ms', 'replays')
return {'ok', g[1], platform, tonumber(g[2]) or 0, g[3], g[4], tonumber(g[5]) or 0, probe and 1 or 0}
