-- latency: fleet-wide histograms of Moloco's round trip (by status class) and of the delay from
-- enqueue to delivery, per platform, in {p}:hist:{platform} (fields in eventfwd/core/latency.py,
-- whose bounds these copy: tests/integration/test_keys.py holds the two in step). Prepended to
-- the scripts that record an outcome (ack, reschedule, dead). Counts are per bucket; bucket i
-- holds values <= BOUNDS[i + 1]; i == #BOUNDS is +Inf. Observations are summed per call and
-- written with one HINCRBY per field.

local RTT_BOUNDS = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000}
local E2E_BOUNDS = {100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 900000,
  3600000, 21600000, 86400000, 604800000}

local function hist_bucket(bounds, v)
  for i = 1, #bounds do
    if v <= bounds[i] then return i - 1 end
  end
  return #bounds
end

local hist_acc, hist_order = {}, {}

local function hist_observe(platform, kind, bounds, value)
  local acc = hist_acc[platform]
  if not acc then
    acc = {}
    hist_acc[platform] = acc
    hist_order[#hist_order + 1] = platform
  end
  local f = kind .. ':' .. hist_bucket(bounds, value)
  acc[f] = (acc[f] or 0) + 1
  acc[kind .. ':sum_ms'] = (acc[kind .. ':sum_ms'] or 0) + math.floor(value)
end

-- A round trip of `rtt_ms` answered with `status` ('' for no answer); ignored when negative.
local function hist_rtt(platform, status, rtt_ms)
  if rtt_ms and rtt_ms >= 0 then
    hist_observe(platform, 'rtt:' .. status_class(status), RTT_BOUNDS, rtt_ms)
  end
end

-- A delivery `delay_ms` after its enqueue.
local function hist_e2e(platform, delay_ms)
  if delay_ms and delay_ms >= 0 then hist_observe(platform, 'e2e', E2E_BOUNDS, delay_ms) end
end

local function hist_flush(p)
  for _, platform in ipairs(hist_order) do
    local h = key(p, 'hist', platform)
    for f, n in pairs(hist_acc[platform]) do redis.call('HINCRBY', h, f, n) end
  end
end
