-- concurrency: each platform's adaptive in-flight cap, fleet-wide, after Vector's Adaptive
-- Request Concurrency (AIMD). Prepended to every script (eventfwd/core/ledger.py): claim reads
-- the cap, ack grows it, reschedule shrinks it.
--
-- {p}:conc:{platform} hash: cap (float), ssthresh, rtt_ms (the platform's usual round trip, an
--   EWMA of delivered requests), decreased_ms.
-- {p}:inflight:{platform} zset: the events in flight, scored by their lease deadline; an expired
--   lease no longer counts, so a dead worker's slots come back with its leases.
-- A success grows the cap while the cap is in use (at least half of it in flight): by one per
-- delivery below ssthresh (slow start: it doubles each round trip), then by 1/cap per delivery
-- (about one per round trip). A timeout, a 5xx, a 429, or round trips far above the usual one
-- halve it, at most once per decrease window (one second, or two usual round trips), and set
-- ssthresh there. Bounds: cfg.min <= cap <= cfg.max; a new platform starts at cfg.initial.
-- cfg = {initial, min, max} comes from the settings (EVENTFWD_CONCURRENCY_*).

-- A round trip this far above the usual one (ratio and margin) counts as congestion.
local LATENCY_RATIO, LATENCY_MARGIN_MS = 2, 100

local function conc_load(p, platform, cfg)
  local r = redis.call('HMGET', key(p, 'conc', platform), 'cap', 'ssthresh', 'rtt_ms',
    'decreased_ms')
  local cap = tonumber(r[1]) or cfg.initial
  cap = math.max(cfg.min, math.min(cfg.max, cap))
  return {cap = cap, ssthresh = tonumber(r[2]) or cfg.max, rtt = tonumber(r[3]),
    decreased = tonumber(r[4]) or 0}
end

local function conc_in_flight(p, platform, now)
  return redis.call('ZCOUNT', key(p, 'inflight', platform), '(' .. now, '+inf')
end

-- Slots free for `platform` now (never below zero).
local function conc_free(p, platform, cfg, now)
  local st = conc_load(p, platform, cfg)
  return math.max(0, math.floor(st.cap) - conc_in_flight(p, platform, now))
end

local function conc_save(p, platform, st)
  local fields = {'cap', st.cap, 'ssthresh', st.ssthresh, 'decreased_ms', st.decreased}
  if st.rtt then
    fields[#fields + 1] = 'rtt_ms'
    fields[#fields + 1] = st.rtt
  end
  redis.call('HSET', key(p, 'conc', platform), unpack(fields))
end

local function conc_halve(st, cfg, now)
  local window = math.max(1000, 2 * (st.rtt or 0))
  if now - st.decreased < window then return false end
  st.cap = math.max(cfg.min, st.cap / 2)
  st.ssthresh = st.cap
  st.decreased = now
  return true
end

-- `n` deliveries of `platform`, their mean round trip `rtt_ms`. `in_flight` counts the events
-- still out after these (the cap was in use when in_flight + n reaches half of it).
local function conc_success(p, platform, n, rtt_ms, cfg, now)
  local st = conc_load(p, platform, cfg)
  local in_flight = conc_in_flight(p, platform, now)
  if st.rtt and rtt_ms > st.rtt * LATENCY_RATIO + LATENCY_MARGIN_MS then
    conc_halve(st, cfg, now)
  elseif in_flight + n >= st.cap / 2 then
    if st.cap < st.ssthresh then st.cap = st.cap + n else st.cap = st.cap + n / st.cap end
    st.cap = math.min(cfg.max, st.cap)
  end
  if st.rtt then st.rtt = st.rtt + 0.1 * (rtt_ms - st.rtt) else st.rtt = rtt_ms end
  conc_save(p, platform, st)
end

-- A timeout, a 5xx or a 429: halve the cap (once per window).
local function conc_failure(p, platform, cfg, now)
  local st = conc_load(p, platform, cfg)
  if conc_halve(st, cfg, now) then conc_save(p, platform, st) end
end
