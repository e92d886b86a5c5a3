-- Shared helpers, prepended to every script by core/ledger.py (not a script of its own).
--
-- Key layout (mirrors core/keys.py):  {p}:ev:{id}  {p}:sched:{platform}  {p}:platforms
--   {p}:dead  {p}:done:{id}  {p}:stats  {p}:seq  {p}:circuit:{platform}  {p}:rate:{platform}
-- Envelope states: queued (a message is out; score = republish deadline), scheduled (score = due
-- time), inflight (claimed; score = lease deadline), dead (not scheduled; in {p}:dead).
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
local function count(p, field, n, now)
  local bucket = key(p, 'minute', tostring(math.floor(now / 60000)))
  redis.call('HINCRBY', bucket, field, n)
  redis.call('EXPIRE', bucket, 7200)
  redis.call('HINCRBY', key(p, 'stats'), field, n)
end

-- Count `field` for one platform: {p}:pstats:{platform} and {p}:pminute:{platform}:{minute}.
local function count_platform(p, platform, field, n, now)
  local bucket = p .. ':pminute:' .. platform .. ':' .. tostring(math.floor(now / 60000))
  redis.call('HINCRBY', bucket, field, n)
  redis.call('EXPIRE', bucket, 7200)
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

-- Move a claimed or parked envelope to the dead letters.
local function to_dead(p, id, ev, platform, reason, status, message, now)
  redis.call('HSET', ev, 'state', 'dead', 'reason', reason, 'last_status', status,
    'last_message', message, 'dead_ms', now)
  redis.call('HDEL', ev, 'token')
  redis.call('ZREM', key(p, 'sched', platform), id)
  redis.call('ZADD', key(p, 'dead'), now, id)
  count_both(p, platform, 'dead:' .. reason, 1, now)
end
