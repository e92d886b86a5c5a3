-- ack: Moloco accepted these events; drop them from the ledger and keep a delivery record.
-- One call acks a group of deliveries, so a wave costs one round trip, whatever its size.
-- A 2xx is the truth even when our lease was lost meanwhile, so the token is not required to
-- match; the answer says whether it did. A delivery closes the platform's circuit (a delivered
-- probe) and, with its round trip, feeds the platform's in-flight cap (concurrency.lua).
-- KEYS: none (built from ARGV[1])
-- ARGV (AckArgs in eventfwd/core/ledger.py): 1 prefix, 2 delivery record ttl_ms,
--       3 concurrency initial, 4 concurrency min, 5 concurrency max,
--       then 4 values per delivery: id, token, rtt_ms, HTTP status
-- Returns: {held, closed}: held has one answer per id (1 our lease, 0 someone else's, -1 already
--          gone); closed lists the platforms whose open circuit these deliveries closed
-- {p}:done:{id} (hash, expires after ttl): delivered_ms, attempts, status, rtt_ms, platform,
-- enqueued_ms: the answer to "did this event reach Moloco?", and enqueue's duplicate guard.
-- Round trips and enqueue-to-delivery delays go into the platform's histograms (latency.lua).
local p, ttl = ARGV[1], tonumber(ARGV[2])
local cfg = {initial = tonumber(ARGV[3]), min = tonumber(ARGV[4]), max = tonumber(ARGV[5])}
local now = now_ms()
local held, delivered, rtt_sum, order = {}, {}, {}, {}
for i = 6, #ARGV, 4 do
  local id, token, rtt_ms, status = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  local ev = key(p, 'ev', id)
  local done = key(p, 'done', id)
  local f = redis.call('HMGET', ev, 'platform', 'token', 'attempts', 'enqueued_ms', 'state')
  if not f[1] then
    held[#held + 1] = -1
    if redis.call('EXISTS', done) == 0 then
      redis.call('HSET', done, 'delivered_ms', now, 'status', status, 'rtt_ms', rtt_ms)
      redis.call('PEXPIRE', done, ttl)
    end
  else
    local platform = f[1]
    redis.call('HSET', done, 'delivered_ms', now, 'attempts', (tonumber(f[3]) or 0) + 1,
      'status', status, 'rtt_ms', rtt_ms, 'platform', platform, 'enqueued_ms', f[4] or '')
    redis.call('PEXPIRE', done, ttl)
    redis.call('DEL', ev)
    if f[5] == 'inflight' then
      redis.call('ZREM', key(p, 'inflight', platform), id)
    elseif f[5] == 'dead' then
      -- a late 2xx for an event dead-lettered meanwhile (its lease expired): it is delivered
      redis.call('ZREM', key(p, 'dead'), id)
    else
      unlist(p, platform, id)  -- its lease expired and it was put back meanwhile
    end
    if not delivered[platform] then
      order[#order + 1] = platform
      delivered[platform], rtt_sum[platform] = 0, 0
    end
    delivered[platform] = delivered[platform] + 1
    rtt_sum[platform] = rtt_sum[platform] + rtt_ms
    hist_rtt(platform, status, rtt_ms)
    hist_e2e(platform, tonumber(f[4]) and now - tonumber(f[4]))
    held[#held + 1] = f[2] == token and 1 or 0
  end
end
hist_flush(p)
local closed = {}
for _, platform in ipairs(order) do
  local n = delivered[platform]
  count_both(p, platform, 'delivered', n, now)
  if circuit_close(p, platform, now) == 1 then closed[#closed + 1] = platform end
  conc_success(p, platform, n, rtt_sum[platform] / n, cfg, now)
end
return {held, closed}
