-- lock_take: take a lock that is free or expired, or extend it when the caller already holds it.
-- The holder's own name and start time stay in the value, so operators (`eventfwd doctor`) can
-- see who holds it; the token alone decides whose it is.
-- KEYS: 1 the lock ({p}:lock:{name}, a string that expires)
-- ARGV: 1 token (unique per holder), 2 time to live in ms, 3 host, 4 pid
-- Returns: {1, value} when the caller holds it now (taken, or extended for ARGV[2] ms),
--          {0, value} when another holder does (nothing changed);
--          value = JSON {token, host, pid, since_ms} with since_ms from Redis's clock
local value = redis.call('GET', KEYS[1])
if value then
  local ok, holder = pcall(cjson.decode, value)
  if ok and type(holder) == 'table' and holder.token == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {1, value}
  end
  return {0, value}
end
value = cjson.encode({token = ARGV[1], host = ARGV[3], pid = tonumber(ARGV[4]),
  since_ms = now_ms()})
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return {1, value}
