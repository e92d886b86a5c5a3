-- claim: take events for delivery under a lease (compare-and-set), each one or say why not.
-- One call claims every id of a message, in order, so a batch costs one round trip.
-- Also enforces the platform's circuit (park unless this is the probe) and its shared send rate
-- (GCRA with one second of burst: an event over the rate goes back to the schedule, due when
-- the next token is, and the pump releases the schedule at the rate; no slot is reserved, so a
-- long queue of messages cannot book the future ahead of the events already due).
-- KEYS: none (built from ARGV[1])
-- ARGV: 1 prefix, 2 token (the lease holder, one for the whole call), 3 lease_ms,
--       4 default rate per second,
--       5 per-platform rate overrides 'KEY=rate,KEY=rate' (KEY: platform id upper-cased, every
--       character outside A-Z0-9 replaced by '_', as in EVENTFWD_PLATFORM_<KEY>_...),
--       6 poison threshold (taking over an expired lease counts like the pump's reaping),
--       7.. event ids
-- Returns: one answer per id, in order:
--          {'ok', body, platform, attempts, enqueued_ms, event_ms, replays, probe}
--       or {'gone'} (not in the ledger), {'delivered'}, {'dead'}, {'busy'} (another lease holds it),
--          {'notdue', due_ms}, {'parked'} (circuit open), {'throttled', due_ms}
local p, token = ARGV[1], ARGV[2]
local lease_ms, default_rate = tonumber(ARGV[3]), tonumber(ARGV[4])
local poison_threshold = tonumber(ARGV[6])
local now = now_ms()

-- Per platform, read once a call and written back at the end: the circuit, the send rate.
local open, rates, throttled = {}, {}, {}

local function circuit_open(platform)
  if open[platform] == nil then
    open[platform] = redis.call('HGET', key(p, 'circuit', platform), 'state') == 'open'
  end
  return open[platform]
end

local function configured_rate(platform)
  local rate = default_rate
  local pkey = string.gsub(string.upper(platform), '[^A-Z0-9]', '_')
  for k, v in string.gmatch(ARGV[5], '([^,=]+)=([^,]+)') do
    if k == pkey then rate = tonumber(v) end
  end
  return rate
end

local function rate_state(platform)
  local st = rates[platform]
  if st == nil then
    local cfg_rate = configured_rate(platform)
    local r = redis.call('HMGET', key(p, 'rate', platform), 'rate', 'rate_ms', 'tat_ms',
      'paused_until_ms')
    local rate = tonumber(r[1]) or cfg_rate
    local rate_ms = tonumber(r[2]) or now
    -- additive recovery towards the configured rate: back to full within about a minute
    rate = math.min(cfg_rate, rate + cfg_rate / 60 * math.max(0, now - rate_ms) / 1000)
    st = {rate = rate, tat = math.max(tonumber(r[3]) or now, now), paused = tonumber(r[4]) or 0}
    rates[platform] = st
  end
  return st
end

-- The send-rate check: nil when the event may go now (it takes a token), else when it may.
local function rate_due(platform)
  local st = rate_state(platform)
  if st.paused > now then return st.paused end
  if st.tat - now > 1000 then return st.tat - 1000 end
  st.tat = st.tat + 1000 / st.rate
  return nil
end

-- Back to the schedule, due at `due`: not sent now, and no lease held.
local function put_back(ev, sched, id, due)
  redis.call('HSET', ev, 'state', 'scheduled')
  redis.call('HDEL', ev, 'token')
  redis.call('ZADD', sched, due, id)
end

local function claim(id)
  local ev = key(p, 'ev', id)
  local f = redis.call('HMGET', ev, 'state', 'platform', 'probe')
  local state, platform = f[1], f[2]
  if not state then
    if redis.call('EXISTS', key(p, 'done', id)) == 1 then return {'delivered'} end
    return {'gone'}
  end
  if state == 'dead' then return {'dead'} end
  local sched = key(p, 'sched', platform)
  local score = tonumber(redis.call('ZSCORE', sched, id) or '0')
  if state == 'inflight' and score > now then return {'busy'} end
  if state == 'scheduled' and score > now then return {'notdue', score} end
  if state == 'inflight' then
    local n = redis.call('HINCRBY', ev, 'lease_expiries', 1)
    if n >= poison_threshold then
      to_dead(p, id, ev, platform, 'poison', '', 'the worker holding it died ' .. n .. ' times', now)
      return {'dead'}
    end
  end

  local probe = f[3] == '1'
  if not probe then
    if circuit_open(platform) then
      put_back(ev, sched, id, now)
      return {'parked'}
    end
    local due = rate_due(platform)
    if due then
      put_back(ev, sched, id, due)
      throttled[platform] = (throttled[platform] or 0) + 1
      return {'throttled', due}
    end
  end

  redis.call('HSET', ev, 'state', 'inflight', 'token', token)
  redis.call('ZADD', sched, now + lease_ms, id)
  local g = redis.call('HMGET', ev, 'body', 'attempts', 'enqueued_ms', 'event_ms', 'replays')
  return {'ok', g[1], platform, tonumber(g[2]) or 0, g[3], g[4], tonumber(g[5]) or 0,
    probe and 1 or 0}
end

local out = {}
for i = 7, #ARGV do out[#out + 1] = claim(ARGV[i]) end
for platform, st in pairs(rates) do
  redis.call('HSET', key(p, 'rate', platform), 'rate', st.rate, 'rate_ms', now, 'tat_ms', st.tat)
end
for platform, n in pairs(throttled) do count_both(p, platform, 'throttled_local', n, now) end
return out
