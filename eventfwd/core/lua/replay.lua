-- replay: give dead letters another chance, with a fresh attempt budget and the same id.
-- Replayed events join the ready set in the backlog lane: claimed behind every live event of
-- their platform, within its rate and in-flight cap, never as a flood. While the platform's
-- circuit is open they are parked in the schedule instead, like any other event.
-- KEYS: none (built from ARGV[1])
-- ARGV (ReplayArgs in eventfwd/core/ledger.py): 1 prefix, 2 max replays per event (0: no cap,
--       for an operator's explicit replay), 3 reasons allowed ('*' or 'a,b,c'), 4 skip platforms
--       whose circuit is open (1 or 0), then the ids
-- Returns: {replayed, skipped}
local p, cap = ARGV[1], tonumber(ARGV[2])
local allowed = {}
local any = ARGV[3] == '*'
for r in string.gmatch(ARGV[3], '[^,]+') do allowed[r] = true end
local skip_open = ARGV[4] == '1'
local now = now_ms()
local replayed, skipped, woken = 0, 0, {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local ev = key(p, 'ev', id)
  local f = redis.call('HMGET', ev, 'state', 'reason', 'replays', 'platform')
  local replays = tonumber(f[3]) or 0
  local platform = f[4]
  local blocked = skip_open and platform and circuit_is_open(p, platform)
  if f[1] == 'dead' and not blocked and (any or allowed[f[2]]) and (cap == 0 or replays < cap) then
    redis.call('HSET', ev, 'attempts', 0, 'replays', replays + 1, 'lease_expiries', 0,
      'replayed_ms', now, 'lane', 'backlog')
    redis.call('HDEL', ev, 'reason', 'dead_ms', 'token', 'probe')
    redis.call('ZREM', key(p, 'dead'), id)
    redis.call('SADD', key(p, 'platforms'), platform)
    if circuit_is_open(p, platform) then
      make_scheduled(p, id, ev, platform, now)
    else
      make_ready(p, id, ev, platform, 'backlog', now)
      woken[platform] = true
    end
    replayed = replayed + 1
    count_platform(p, platform, 'replayed', 1, now)
  else
    skipped = skipped + 1
  end
end
for platform in pairs(woken) do activate(p, platform) end
if replayed > 0 then redis.call('HINCRBY', key(p, 'stats'), 'replayed', replayed) end
return {replayed, skipped}
