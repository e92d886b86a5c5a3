-- ack: Moloco accepted the event; drop it from the ledger and remember it was delivered.
-- A 2xx is the truth even when our lease was lost meanwhile, so the token is not required to
-- match; the answer says whether it did. A success also resets the platform's failure count and
-- closes its circuit (a successful probe).
-- KEYS: none (built from ARGV[1])
-- ARGV: 1 prefix, 2 id, 3 token, 4 delivered-marker ttl_ms
-- Returns: {held, circuit_closed}: held 1 our lease, 0 someone else's, -1 already gone;
--          circuit_closed 1 when this success closed an open circuit
local p, id, token, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local ev = key(p, 'ev', id)
local f = redis.call('HMGET', ev, 'platform', 'token')
redis.call('SET', key(p, 'done', id), 1, 'PX', ttl)
if not f[1] then return {-1, 0} end
local platform = f[1]
redis.call('DEL', ev)
redis.call('ZREM', key(p, 'sched', platform), id)
count_both(p, platform, 'delivered', 1, now_ms())
local ck = key(p, 'circuit', platform)
local closed = 0
if redis.call('HGET', ck, 'state') == 'open' then
  closed = 1
  redis.call('HINCRBY', key(p, 'stats'), 'circuit_closed', 1)
end
redis.call('HSET', ck, 'state', 'closed', 'failures', 0)
if closed == 1 then redis.call('HSET', ck, 'closed_ms', now_ms()) end
local held = 0
if f[2] == token then held = 1 end
return {held, closed}
