-- rate: each platform's shared send rate, fleet-wide. Prepended to every script
-- (eventfwd/core/ledger.py); claim takes tokens, reschedule slows it down on a 429.
--
-- {p}:rate:{platform} hash: rate (per second, in force), rate_ms (when it was last written),
--   tat_ms (GCRA theoretical arrival time), paused_until_ms (Retry-After), decreased_ms.
-- GCRA with one second of burst: nothing is reserved ahead, a claim takes tokens only for the
-- events it hands out now. A 429 halves the rate (at most once a second: answers to requests
-- that were already on their way report the same congestion; floor one request every ten
-- seconds) and pauses the platform for Retry-After; the rate then recovers additively to the
-- configured one within about a minute.

-- The configured rate: per-platform overrides 'KEY=rate,KEY=rate' (KEY: the platform id
-- upper-cased, every character outside A-Z0-9 replaced by '_', as in EVENTFWD_PLATFORM_<KEY>_...).
local function rate_configured(platform, default_rate, overrides)
  local rate = default_rate
  local pkey = string.gsub(string.upper(platform), '[^A-Z0-9]', '_')
  for k, v in string.gmatch(overrides, '([^,=]+)=([^,]+)') do
    if k == pkey then rate = tonumber(v) end
  end
  return rate
end

local function rate_load(p, platform, cfg_rate, now)
  local r = redis.call('HMGET', key(p, 'rate', platform), 'rate', 'rate_ms', 'tat_ms',
    'paused_until_ms')
  local rate = tonumber(r[1]) or cfg_rate
  local rate_ms = tonumber(r[2]) or now
  rate = math.min(cfg_rate, rate + cfg_rate / 60 * math.max(0, now - rate_ms) / 1000)
  return {rate = rate, tat = math.max(tonumber(r[3]) or now, now), paused = tonumber(r[4]) or 0}
end

-- How many events may go now, and (when none may) the time the next one may.
local function rate_tokens(st, now)
  if st.paused > now then return 0, st.paused end
  local interval = 1000 / st.rate
  local room = now + 1000 - st.tat
  if room < 0 then return 0, st.tat - 1000 end
  return math.floor(room / interval) + 1, now
end

local function rate_take(st, n)
  st.tat = st.tat + n * 1000 / st.rate
end

local function rate_save(p, platform, st, now)
  redis.call('HSET', key(p, 'rate', platform), 'rate', st.rate, 'rate_ms', now, 'tat_ms', st.tat)
end

-- A 429: halve the rate (at most once a second) and pause until `now + pause_ms`. Returns the
-- time the platform may send again.
local function rate_throttled(p, platform, cfg_rate, pause_ms, now)
  local rk = key(p, 'rate', platform)
  local r = redis.call('HMGET', rk, 'rate', 'paused_until_ms', 'decreased_ms')
  local rate = tonumber(r[1]) or cfg_rate
  if now - (tonumber(r[3]) or 0) >= 1000 then
    rate = math.max(0.1, rate / 2)
    redis.call('HSET', rk, 'rate', rate, 'rate_ms', now, 'decreased_ms', now)
  end
  local paused = math.max(tonumber(r[2]) or 0, now + pause_ms)
  redis.call('HSET', rk, 'paused_until_ms', paused)
  return paused
end
