-- dead: move a claimed event to the dead letters (permanent refusal, expired).
-- KEYS: none (built from ARGV[1])
-- ARGV (DeadArgs in eventfwd/core/ledger.py): 1 prefix, 2 id, 3 token, 4 reason, 5 status,
--       6 message, 7 history record, 8 count the attempt (1 or 0), 9 Moloco answered (1 or 0):
--       an answer, even a refusal, shows the platform is up (circuit.lua: circuit_answered),
--       10 rtt_ms (the attempt's round trip, for the histogram; -1: none)
-- Returns: 1 moved, 0 the lease is not ours (nothing changed)
local p, id, token, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ev = key(p, 'ev', id)
local f = redis.call('HMGET', ev, 'state', 'token', 'platform')
if f[1] ~= 'inflight' or f[2] ~= token then return 0 end
local now = now_ms()
add_history(ev, ARGV[7])
if ARGV[9] == '1' then
  hist_rtt(f[3], ARGV[5], tonumber(ARGV[10]))
  hist_flush(p)
end
if ARGV[8] == '1' then
  redis.call('HINCRBY', ev, 'attempts', 1)
  count_failed(p, f[3], ARGV[5], now)
end
to_dead(p, id, ev, f[3], reason, ARGV[5], ARGV[6], now)
if ARGV[9] == '1' then circuit_answered(p, f[3], now) end
return 1
