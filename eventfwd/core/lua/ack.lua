-- ack: Moloco accepted these events; drop them from the ledger and remember they were delivered.
-- One call acks every delivered id of a message, so a batch costs one round trip.
-- A 2xx is the truth even when our lease was lost meanwhile, so the token is not required to
-- match; the answer says whether it did. A success also resets the platform's failure count and
-- closes its circuit (a successful probe).
-- KEYS: none (built from ARGV[1])
-- ARGV: 1 prefix, 2 token, 3 delivered-marker ttl_ms, 4.. event ids
-- Returns: {held, closed}: held has one answer per id (1 our lease, 0 someone else's, -1 already
--          gone); closed lists the platforms whose open circuit these successes closed
local p, token, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = now_ms()
local held, delivered = {}, {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local ev = key(p, 'ev', id)
  local f = redis.call('HMGET', ev, 'platform', 'token')
  redis.call('SET', key(p, 'done', id), 1, 'PX', ttl)
  if not f[1] then
    held[#held + 1] = -1
  else
    redis.call('DEL', ev)
    redis.call('ZREM', key(p, 'sched', f[1]), id)
    delivered[f[1]] = (delivered[f[1]] or 0) + 1
    held[#held + 1] = f[2] == token and 1 or 0
  end
end
local closed = {}
for platform, n in pairs(delivered) do
  count_both(p, platform, 'delivered', n, now)
  local ck = key(p, 'circuit', platform)
  if redis.call('HGET', ck, 'state') == 'open' then
    closed[#closed + 1] = platform
    redis.call('HINCRBY', key(p, 'stats'), 'circuit_closed', 1)
    redis.call('HSET', ck, 'closed_ms', now)
  end
  redis.call('HSET', ck, 'state', 'closed', 'failures', 0)
end
return {held, closed}
