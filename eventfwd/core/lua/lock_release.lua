-- lock_release: give a lock up, only when the caller holds it (compare-and-delete).
-- KEYS: 1 the lock ({p}:lock:{name})
-- ARGV: 1 token of the caller
-- Returns: 1 released, 0 held by another holder or already gone (nothing changed)
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
local ok, holder = pcall(cjson.decode, value)
if ok and type(holder) == 'table' and holder.token == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
