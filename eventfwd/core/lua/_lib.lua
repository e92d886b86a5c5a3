-- Shared helpers, prepended to every script by core/ledger.py (not a script of its own).
--
-- Key layout (mirrors eventfwd/core/keys.py): {p}:ev:{id}  {p}:ready:{platform}
--   {p}:sched:{platform}  {p}:inflight:{platform}  {p}:active  {p}:bell  {p}:platforms  {p}:dead
--   {p}:done:{id}  {p}:stats  {p}:seq  {p}:circuit:{platform}  {p}:rate:{platform}
--   {p}:conc:{platform}  {p}:pause:{platform}  {p}:engines  {p}:wake  {p}:rr
-- Envelope states (eventfwd/core/vocabulary.py State): ready (in {p}:ready, score = lane + time),
-- scheduled (in {p}:sched, score = due time; parked there while the circuit is open), inflight
-- (in {p}:inflight, score = lease deadline), dead (in {p}:dead). 'queued' is read as scheduled:
-- envelopes written before the scheduler (their message carried the id) are moved when due.
-- Lanes (envelope field `lane`): live (fresh events and their retries) is served before backlog
-- (replays, events parked during an outage), within each oldest first.
if redis.replicate_commands then redis.replicate_commands() end

local function key(p, kind, id)
  if id then return p .. ':' .. kind .. ':' .. id end
  return p .. ':' .. kind
end

-- One clock for the whole fleet: Redis's.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Append one JSON history record to an envelope, keeping the newest ~8 KiB.
local function add_history(ev, record)
  if record == nil or record == '' then return end
  local h = redis.call('HGET', ev, 'history')
  if h and h ~= '' then h = h .. '\n' .. record else h = record end
  if #h > 8192 then
    local cut = string.find(h, '\n', #h - 8192, true)
    if cut then h = string.sub(h, cut + 1) end
  end
  redis.call('HSET', ev, 'history', h)
end

-- Count `field` in this minute's bucket ({p}:minute:{epoch minute}, kept two hours) and in the
-- all-time counters ({p}:stats), so operators see rates as well as totals.
-- A bucket's expiry is set with its first count (a field that did not exist before), not on
-- every count: most calls of a one-event enqueue or ack are these few commands.
local function count(p, field, n, now)
  local bucket = key(p, 'minute', tostring(math.floor(now / 60000)))
  if redis.call('HINCRBY', bucket, field, n) == n then redis.call('EXPIRE', bucket, 7200) end
  redis.call('HINCRBY', key(p, 'stats'), field, n)
end

-- Count `field` for one platform: {p}:pstats:{platform} and {p}:pminute:{platform}:{minute}.
local function count_platform(p, platform, field, n, now)
  local bucket = p .. ':pminute:' .. platform .. ':' .. tostring(math.floor(now / 60000))
  if redis.call('HINCRBY', bucket, field, n) == n then redis.call('EXPIRE', bucket, 7200) end
  redis.call('HINCRBY', key(p, 'pstats', platform), field, n)
end

-- Both: fleet-wide and per platform.
local function count_both(p, platform, field, n, now)
  count(p, field, n, now)
  count_platform(p, platform, field, n, now)
end

-- '' (no response) -> 'none', 503 -> '5xx'
local function status_class(status)
  if status == nil or status == '' then return 'none' end
  return string.sub(status, 1, 1) .. 'xx'
end

-- A failed attempt: fleet-wide and per platform, and per platform by status class.
local function count_failed(p, platform, status, now)
  count_both(p, platform, 'failed', 1, now)
  count_platform(p, platform, 'failed:' .. status_class(status), 1, now)
end

-- Take an event out of whichever of its platform's sets holds it.
local function unlist(p, platform, id)
  redis.call('ZREM', key(p, 'ready', platform), id)
  redis.call('ZREM', key(p, 'sched', platform), id)
  redis.call('ZREM', key(p, 'inflight', platform), id)
end

-- Move a claimed or parked envelope to the dead letters.
local function to_dead(p, id, ev, platform, reason, status, message, now)
  redis.call('HSET', ev, 'state', 'dead', 'reason', reason, 'last_status', status,
    'last_message', message, 'dead_ms', now)
  redis.call('HDEL', ev, 'token', 'probe')
  unlist(p, platform, id)
  redis.call('ZADD', key(p, 'dead'), now, id)
  count_both(p, platform, 'dead:' .. reason, 1, now)
end

-- Ready-set score: the backlog lane sorts after every live event (1e13 ms is the year 2286).
local BACKLOG = 10000000000000
local function lane_score(lane, ms)
  if lane == 'backlog' then return BACKLOG + ms end
  return ms
end

-- Ring the fleet's doorbell: one idle delivery engine wakes and claims. The bell holds at most
-- one ring; a ring nobody needed costs one empty claim.
local function ring(p)
  local bell = key(p, 'bell')
  if redis.call('LLEN', bell) == 0 then redis.call('RPUSH', bell, 1) end
end

-- A platform has ready events: put it in the claim rotation and wake an engine.
local function activate(p, platform)
  redis.call('ZADD', key(p, 'active'), 0, platform)
  ring(p)
end

-- Make an event ready to claim in its lane (`ms`: its place within the lane).
local function make_ready(p, id, ev, platform, lane, ms)
  redis.call('HSET', ev, 'state', 'ready')
  redis.call('ZREM', key(p, 'sched', platform), id)
  redis.call('ZREM', key(p, 'inflight', platform), id)
  redis.call('ZADD', key(p, 'ready', platform), lane_score(lane, ms), id)
end

-- Park an event in the schedule, due at `due` (backoff, a 429 pause, an open circuit).
local function make_scheduled(p, id, ev, platform, due)
  redis.call('HSET', ev, 'state', 'scheduled')
  redis.call('HDEL', ev, 'token')
  redis.call('ZREM', key(p, 'ready', platform), id)
  redis.call('ZREM', key(p, 'inflight', platform), id)
  redis.call('ZADD', key(p, 'sched', platform), due, id)
end

-- Park an event while its platform's circuit is open: scheduled now, and in the backlog lane,
-- behind live events, once the outage is over.
local function park(p, id, ev, platform, now)
  redis.call('HSET', ev, 'lane', 'backlog')
  make_scheduled(p, id, ev, platform, now)
end
