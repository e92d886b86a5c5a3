-- resume: an operator releases a paused platform; its ready events go back into the claim
-- rotation (sent at its rate and in-flight cap), the pump releases the rest of its schedule.
-- KEYS: none (built from ARGV[1])
-- ARGV (ResumeArgs in eventfwd/core/ledger.py): 1 prefix, 2 platform, 3 by (who)
-- Returns: 1 resumed, 0 it was not paused
local p, platform = ARGV[1], ARGV[2]
if redis.call('DEL', key(p, 'pause', platform)) == 0 then return 0 end
local now = now_ms()
count_platform(p, platform, 'resumed', 1, now)
if redis.call('ZCARD', key(p, 'ready', platform)) > 0 then activate(p, platform) end
return 1
