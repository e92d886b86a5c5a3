-- circuit_reset: an operator closes a platform's circuit (`eventfwd circuit reset`), as a
-- delivered probe would (circuit.lua: circuit_close): its events drain at its rate.
-- KEYS: none (built from ARGV[1])
-- ARGV (CircuitResetArgs in eventfwd/core/ledger.py): 1 prefix, 2 platform
-- Returns: 1 it was open and is closed now, 0 it was not open (failure count reset all the same)
local p, platform = ARGV[1], ARGV[2]
return circuit_close(p, platform, now_ms())
