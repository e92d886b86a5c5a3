-- import: write dead letters from an export file (`eventfwd dead import`) back into the ledger.
-- Each record becomes a dead letter as exported (reason, status, message, attempts, replays,
-- history and times), so `eventfwd dead replay` can send it again. An id the ledger holds as a
-- live event (queued, scheduled, in flight) is never touched, nor one delivered recently (its
-- marker is still set); an existing dead letter is overwritten only when replace is 1.
-- KEYS: none (built from ARGV[1])
-- ARGV: 1 prefix, 2 replace (1 or 0), then 12 values per record: id, platform, body, event_ms,
--       enqueued_ms, attempts, replays, reason, status, message, dead_ms, history
-- Returns: one integer per record: 1 imported, 2 replaced a dead letter, 0 skipped (a live
--          event has this id), 3 skipped (delivered recently), 4 skipped (already a dead letter)
local p, replace = ARGV[1], ARGV[2] == '1'
local now = now_ms()
local out, imported = {}, 0
for i = 3, #ARGV, 12 do
  local id, platform, dead_ms = ARGV[i], ARGV[i + 1], ARGV[i + 10]
  local ev = key(p, 'ev', id)
  local state = redis.call('HGET', ev, 'state')
  local result = 1
  if state and state ~= 'dead' then
    result = 0
  elseif state == 'dead' and not replace then
    result = 4
  elseif not state and redis.call('EXISTS', key(p, 'done', id)) == 1 then
    result = 3
  else
    if state == 'dead' then
      result = 2
      redis.call('DEL', ev)
    end
    redis.call('HSET', ev, 'body', ARGV[i + 2], 'platform', platform, 'state', 'dead',
      'event_ms', ARGV[i + 3], 'enqueued_ms', ARGV[i + 4], 'attempts', ARGV[i + 5],
      'replays', ARGV[i + 6], 'reason', ARGV[i + 7], 'last_status', ARGV[i + 8],
      'last_message', ARGV[i + 9], 'dead_ms', dead_ms, 'imported_ms', now)
    if ARGV[i + 11] ~= '' then redis.call('HSET', ev, 'history', ARGV[i + 11]) end
    redis.call('ZADD', key(p, 'dead'), dead_ms, id)
    redis.call('SADD', key(p, 'platforms'), platform)
    imported = imported + 1
  end
  out[#out + 1] = result
end
if imported > 0 then redis.call('HINCRBY', key(p, 'stats'), 'imported', imported) end
return out
