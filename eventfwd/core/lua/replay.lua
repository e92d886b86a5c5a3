-- replay: give dead letters another chance, with a fresh attempt budget and the same id.
-- Replayed events are scheduled as due now and released by the pump at the platform's rate,
-- behind live traffic (which enqueue publishes directly), never as a flood.
-- KEYS: none (built from ARGV[1])
-- ARGV: 1 prefix, 2 max replays per event (0: no cap, for an operator's explicit replay),
--       3 reasons allowed ('*' or 'a,b,c'), 4 skip platforms whose circuit is open (1 or 0),
--       then the ids
-- Returns: {replayed, skipped}
local p, cap = ARGV[1], tonumber(ARGV[2])
local allowed = {}
local any = ARGV[3] == '*'
for r in string.gmatch(ARGV[3], '[^,]+') do allowed[r] = true end
local skip_open = ARGV[4] == '1'
local now = now_ms()
local replayed, skipped, open = 0, 0, {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local ev = key(p, 'ev', id)
  local f = redis.call('HMGET', ev, 'state', 'reason', 'replays', 'platform')
  local replays = tonumber(f[3]) or 0
  local blocked = false
  if skip_open and f[4] then
    if open[f[4]] == nil then
      open[f[4]] = redis.call('HGET', key(p, 'circuit', f[4]), 'state') == 'open'
    end
    blocked = open[f[4]]
  end
  if f[1] == 'dead' and not blocked and (any or allowed[f[2]]) and (cap == 0 or replays < cap) then
    redis.call('HSET', ev, 'state', 'scheduled', 'attempts', 0, 'replays', replays + 1,
      'lease_expiries', 0, 'replayed_ms', now)
    redis.call('HDEL', ev, 'reason', 'dead_ms', 'token', 'probe')
    redis.call('ZREM', key(p, 'dead'), id)
    redis.call('ZADD', key(p, 'sched', f[4]), now, id)
    redis.call('SADD', key(p, 'platforms'), f[4])
    replayed = replayed + 1
    count_platform(p, f[4], 'replayed', 1, now)
  else
    skipped = skipped + 1
  end
end
if replayed > 0 then redis.call('HINCRBY', key(p, 'stats'), 'replayed', replayed) end
return {replayed, skipped}
