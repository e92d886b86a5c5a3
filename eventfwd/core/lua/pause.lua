-- pause: an operator holds a platform: its events are kept (ready, scheduled) and none is sent
-- until resume. Events already in flight finish.
-- KEYS: none (built from ARGV[1])
-- ARGV (PauseArgs in eventfwd/core/ledger.py): 1 prefix, 2 platform, 3 by (who), 4 reason
-- Returns: 1 paused now, 0 it was paused already (left as it was)
local p, platform = ARGV[1], ARGV[2]
local pk = key(p, 'pause', platform)
if redis.call('EXISTS', pk) == 1 then return 0 end
local now = now_ms()
redis.call('HSET', pk, 'by', ARGV[3], 'at_ms', now, 'reason', ARGV[4])
redis.call('SADD', key(p, 'platforms'), platform)
redis.call('ZREM', key(p, 'active'), platform)
count_platform(p, platform, 'paused', 1, now)
return 1
