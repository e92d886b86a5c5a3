-- purge: delete dead letters for good (an operator's decision).
-- KEYS: none (built from ARGV[1])
-- ARGV: 1 prefix, then the ids
-- Returns: the number of dead letters deleted (ids that are not dead letters are left alone)
local p = ARGV[1]
local n = 0
for i = 2, #ARGV do
  local ev = key(p, 'ev', ARGV[i])
  local f = redis.call('HMGET', ev, 'state', 'platform')
  if f[1] == 'dead' then
    count_platform(p, f[2], 'purged', 1, now_ms())
    redis.call('DEL', ev)
    redis.call('ZREM', key(p, 'dead'), ARGV[i])
    n = n + 1
  end
end
if n > 0 then redis.call('HINCRBY', key(p, 'stats'), 'purged', n) end
return n
