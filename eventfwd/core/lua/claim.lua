-- claim: the scheduler's one decision. Hand a delivery engine up to `max` ready events, chosen
-- by policy, each under a lease held by `token`.
-- KEYS: none (built from ARGV[1])
-- ARGV (ClaimArgs in eventfwd/core/ledger.py): 1 prefix, 2 engine id, 3 token, 4 lease_ms,
--       5 max events, 6 default rate per second, 7 per-platform rate overrides ('KEY=rate,...'),
--       8 concurrency initial, 9 concurrency min, 10 concurrency max, 11 engine ttl_ms,
--       12 idle wait_ms
-- Returns: {events, wait_ms, more}: events is flat, 8 values per event: id, body, platform,
--          attempts, enqueued_ms, event_ms, replays, probe (1 or 0); wait_ms (0 when something
--          was claimed) is how long nothing may be claimable (a rate token, a 429 pause);
--          more = 1 when claimable events were left because `max` was reached.
-- Policy, per platform in the rotation ({p}:active, walked from a rotating start):
--   paused by an operator -> nothing; circuit open -> only the released probe (circuit.lua);
--   else at most min(rate tokens (rate.lua), free in-flight slots (concurrency.lua), ready).
--   The wave is shared round-robin, one event per platform per turn, so a platform with
--   100,000 ready events does not starve one with 10. Within a platform the live lane goes
--   first (the ready set's score), oldest first.
local p, engine, token = ARGV[1], ARGV[2], ARGV[3]
local lease_ms, max_n = tonumber(ARGV[4]), tonumber(ARGV[5])
local default_rate, overrides = tonumber(ARGV[6]), ARGV[7]
local cfg = {initial = tonumber(ARGV[8]), min = tonumber(ARGV[9]), max = tonumber(ARGV[10])}
local engine_ttl, idle_ms = tonumber(ARGV[11]), tonumber(ARGV[12])
-- a platform held back only by its in-flight cap is looked at again this soon
local CAP_POLL_MS = 50
local now = now_ms()
local events, wait, more = {}, idle_ms, 0

redis.call('ZADD', key(p, 'engines'), now + engine_ttl, engine)
local turn = redis.call('INCR', key(p, 'rr'))
if turn % 256 == 0 then
  -- now and then, forget engines that stopped claiming long ago (a restart takes a new id)
  redis.call('ZREMRANGEBYSCORE', key(p, 'engines'), '-inf', now - 60 * engine_ttl)
end
local active = redis.call('ZRANGE', key(p, 'active'), 0, -1)
local n = #active
if n > 0 then
  local start = turn % n
  local order, want, rates, probes = {}, {}, {}, {}
  for i = 0, n - 1 do
    local platform = active[((start + i) % n) + 1]
    local ready = key(p, 'ready', platform)
    local nready = redis.call('ZCARD', ready)
    if nready == 0 or redis.call('EXISTS', key(p, 'pause', platform)) == 1 then
      redis.call('ZREM', key(p, 'active'), platform)
    elseif circuit_is_open(p, platform) then
      local probe = circuit_probe_id(p, platform)
      if probe and redis.call('ZSCORE', ready, probe) then
        order[#order + 1] = platform
        want[platform], probes[platform] = 1, probe
      else
        redis.call('ZREM', key(p, 'active'), platform)
      end
    else
      local st = rate_load(p, platform, rate_configured(platform, default_rate, overrides), now)
      local tokens, next_ms = rate_tokens(st, now)
      local free = conc_free(p, platform, cfg, now)
      local allow = math.min(tokens, free, nready)
      if allow > 0 then
        order[#order + 1] = platform
        want[platform], rates[platform] = allow, st
      elseif tokens == 0 then
        wait = math.min(wait, math.max(1, next_ms - now))
      else
        wait = math.min(wait, CAP_POLL_MS)
      end
    end
  end

  -- round-robin: one event per platform per turn until the wave is full
  local left, take, progress = max_n, {}, true
  while left > 0 and progress do
    progress = false
    for _, platform in ipairs(order) do
      if left == 0 then break end
      if want[platform] > 0 then
        take[platform] = (take[platform] or 0) + 1
        want[platform] = want[platform] - 1
        left = left - 1
        progress = true
      end
    end
  end

  for _, platform in ipairs(order) do
    local k = take[platform] or 0
    local ready = key(p, 'ready', platform)
    if k > 0 then
      local ids = {}
      if probes[platform] then
        redis.call('ZREM', ready, probes[platform])
        redis.call('HDEL', key(p, 'circuit', platform), 'probe_id')
        ids[1] = probes[platform]
      else
        local popped = redis.call('ZPOPMIN', ready, k)
        for j = 1, #popped, 2 do ids[#ids + 1] = popped[j] end
      end
      local inflight, got = key(p, 'inflight', platform), 0
      for _, id in ipairs(ids) do
        local ev = key(p, 'ev', id)
        local g = redis.call('HMGET', ev, 'state', 'body', 'attempts', 'enqueued_ms', 'event_ms',
          'replays', 'probe')
        -- anything but 'ready' is a stale member (purged, or moved meanwhile): dropped
        if g[1] == 'ready' then
          redis.call('HSET', ev, 'state', 'inflight', 'token', token)
          redis.call('ZADD', inflight, now + lease_ms, id)
          got = got + 1
          events[#events + 1] = id
          events[#events + 1] = g[2]
          events[#events + 1] = platform
          events[#events + 1] = tonumber(g[3]) or 0
          events[#events + 1] = g[4]
          events[#events + 1] = g[5]
          events[#events + 1] = tonumber(g[6]) or 0
          events[#events + 1] = g[7] == '1' and 1 or 0
        end
      end
      if rates[platform] then
        rate_take(rates[platform], got)
        rate_save(p, platform, rates[platform], now)
      end
      if redis.call('ZCARD', ready) == 0 then redis.call('ZREM', key(p, 'active'), platform) end
    end
    if want[platform] > 0 then more = 1 end
  end
end
if #events > 0 then wait = 0 end
-- claimable events left over: wake another engine to help
if more == 1 then ring(p) end
return {events, wait, more}
