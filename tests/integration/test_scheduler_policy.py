"""The scheduler's rules, one Lua function at a time: the in-flight cap (lua/concurrency.lua),
the send rate (lua/rate.lua) and the fair share of a wave (lua/claim.lua).

Each test EVALs the shared modules, as every ledger script is built, plus a line that calls one
function with a clock of its own (`now`), against the suite's redis-server: only the policy's
own hash and the in-flight set are touched.
"""

from __future__ import annotations

from collections import Counter
from importlib import resources
from typing import Any

import pytest
import redis

from eventfwd.core.ledger import SHARED_LUA, ClaimArgs, script_source

pytestmark = pytest.mark.integration

SHARED = "\n".join((resources.files("eventfwd.core") / "lua" / m).read_text() for m in SHARED_LUA)
NOW = 1_000_000_000  # a clock of the test's own, in ms
CFG = (10, 1, 200)  # in-flight cap: initial, min, max
P, PLATFORM = "pol", "acme"
# ARGV 1-3 of every snippet below: the cap's bounds, as scripts pass them
CFG_LUA = """
local cfg = {initial = tonumber(ARGV[1]), min = tonumber(ARGV[2]), max = tonumber(ARGV[3])}
"""


def run(rclient: redis.Redis, body: str, *argv: Any) -> Any:
    """EVAL the shared modules plus `body`."""
    return rclient.eval(SHARED + "\n" + body, 0, *argv)


def conc_success(
    rclient: redis.Redis, *, n: int, rtt_ms: float, now: int = NOW, cfg: tuple[int, ...] = CFG
) -> None:
    body = CFG_LUA + "conc_success(ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]), cfg,"
    body += " tonumber(ARGV[8]))"
    run(rclient, body, *cfg, P, PLATFORM, n, rtt_ms, now)


def conc_failure(rclient: redis.Redis, *, now: int = NOW, cfg: tuple[int, ...] = CFG) -> None:
    body = CFG_LUA + "conc_failure(ARGV[4], ARGV[5], cfg, tonumber(ARGV[6]))"
    run(rclient, body, *cfg, P, PLATFORM, now)


def conc_free(rclient: redis.Redis, *, now: int = NOW, cfg: tuple[int, ...] = CFG) -> int:
    body = CFG_LUA + "return conc_free(ARGV[4], ARGV[5], cfg, tonumber(ARGV[6]))"
    return int(run(rclient, body, *cfg, P, PLATFORM, now))


def conc(rclient: redis.Redis) -> dict[str, float]:
    """The platform's cap state as the functions left it."""
    return {k: float(v) for k, v in rclient.hgetall(f"{P}:conc:{PLATFORM}").items()}


def set_conc(rclient: redis.Redis, **fields: float) -> None:
    rclient.hset(f"{P}:conc:{PLATFORM}", mapping=fields)


def in_flight(rclient: redis.Redis, n: int, *, deadline_ms: int = NOW + 60_000) -> None:
    """`n` events in flight under leases that end at `deadline_ms`."""
    key = f"{P}:inflight:{PLATFORM}"
    start = rclient.zcard(key)
    rclient.zadd(key, {f"e{start + i}": deadline_ms for i in range(n)})


# -- the in-flight cap (AIMD) ---------------------------------------------------------------------


def test_a_new_platform_starts_at_the_initial_cap_and_only_live_leases_take_slots(
    rclient: redis.Redis,
) -> None:
    assert conc_free(rclient) == 10
    in_flight(rclient, 4)
    assert conc_free(rclient) == 6
    in_flight(rclient, 3, deadline_ms=NOW)  # expired leases (a dead worker's) take no slot
    assert conc_free(rclient) == 6
    in_flight(rclient, 20)
    assert conc_free(rclient) == 0  # never below zero


def test_slow_start_adds_one_per_delivery_while_the_cap_is_in_use(rclient: redis.Redis) -> None:
    in_flight(rclient, 4)  # 4 still out + 1 delivered: half of 10 in use
    conc_success(rclient, n=1, rtt_ms=50)
    assert conc(rclient)["cap"] == 11
    conc_success(rclient, n=3, rtt_ms=50)
    assert conc(rclient)["cap"] == 14
    assert conc(rclient)["rtt_ms"] == 50


def test_the_cap_does_not_grow_while_less_than_half_of_it_is_in_use(
    rclient: redis.Redis,
) -> None:
    in_flight(rclient, 3)  # 3 out + 1 delivered < 10 / 2
    conc_success(rclient, n=1, rtt_ms=50)
    assert conc(rclient)["cap"] == 10
    assert conc(rclient)["rtt_ms"] == 50  # the round trip is learnt all the same


def test_above_ssthresh_the_cap_grows_by_one_over_the_cap_per_delivery(
    rclient: redis.Redis,
) -> None:
    set_conc(rclient, cap=8, ssthresh=8)
    in_flight(rclient, 4)
    conc_success(rclient, n=4, rtt_ms=50)
    assert conc(rclient)["cap"] == 8.5


def test_the_cap_never_grows_past_the_maximum(rclient: redis.Redis) -> None:
    set_conc(rclient, cap=195)
    in_flight(rclient, 100)
    conc_success(rclient, n=10, rtt_ms=50)
    assert conc(rclient)["cap"] == 200


def test_a_failure_halves_the_cap_and_ends_slow_start_there(rclient: redis.Redis) -> None:
    conc_failure(rclient)
    assert conc(rclient) == {"cap": 5, "ssthresh": 5, "decreased_ms": NOW}
    in_flight(rclient, 4)
    conc_success(rclient, n=1, rtt_ms=50, now=NOW + 10)
    assert conc(rclient)["cap"] == pytest.approx(5.2)  # additive now: 1/cap per delivery


def test_failures_halve_the_cap_at_most_once_per_window(rclient: redis.Redis) -> None:
    conc_failure(rclient)
    conc_failure(rclient, now=NOW + 999)  # the same congestion, reported again
    assert conc(rclient)["cap"] == 5
    conc_failure(rclient, now=NOW + 1000)
    assert conc(rclient)["cap"] == 2.5


def test_the_window_is_two_usual_round_trips_when_they_are_longer_than_a_second(
    rclient: redis.Redis,
) -> None:
    set_conc(rclient, cap=16, rtt_ms=800)
    conc_failure(rclient)
    conc_failure(rclient, now=NOW + 1500)
    assert conc(rclient)["cap"] == 8
    conc_failure(rclient, now=NOW + 1600)
    assert conc(rclient)["cap"] == 4


def test_halving_stops_at_the_minimum(rclient: redis.Redis) -> None:
    cfg = (6, 4, 200)
    conc_failure(rclient, cfg=cfg)
    assert conc(rclient)["cap"] == 4
    conc_failure(rclient, now=NOW + 5000, cfg=cfg)
    assert conc(rclient)["cap"] == 4


def test_a_much_slower_round_trip_halves_the_cap(rclient: redis.Redis) -> None:
    set_conc(rclient, cap=10, ssthresh=10, rtt_ms=50)
    in_flight(rclient, 9)
    conc_success(rclient, n=1, rtt_ms=200)  # twice the usual plus 100 ms: not yet congestion
    assert conc(rclient)["cap"] == 10.1
    conc_success(rclient, n=1, rtt_ms=400, now=NOW + 10)
    state = conc(rclient)
    assert (state["cap"], state["ssthresh"], state["decreased_ms"]) == (5.05, 5.05, NOW + 10)
    conc_success(rclient, n=1, rtt_ms=900, now=NOW + 20)  # within the window: once
    assert conc(rclient)["cap"] == 5.05


def test_a_stored_cap_outside_the_bounds_is_read_within_them(rclient: redis.Redis) -> None:
    set_conc(rclient, cap=500)
    assert conc_free(rclient) == 200
    set_conc(rclient, cap=0.2)
    assert conc_free(rclient) == 1


# -- the send rate (GCRA, 429) --------------------------------------------------------------------


def rate_tokens(
    rclient: redis.Redis, *, rate: float, tat: float, paused: float, take: int = 0
) -> tuple[tuple[int, float], tuple[int, float]]:
    """(tokens, next_ms) at NOW, then (tokens, next_ms) after taking `take` of them."""
    body = """
local st = {rate = tonumber(ARGV[1]), tat = tonumber(ARGV[2]), paused = tonumber(ARGV[3])}
local now = tonumber(ARGV[5])
local a, a_next = rate_tokens(st, now)
rate_take(st, tonumber(ARGV[4]))
local b, b_next = rate_tokens(st, now)
return {a, tostring(a_next), b, tostring(b_next)}"""
    a, a_next, b, b_next = run(rclient, body, rate, tat, paused, take, NOW)
    return (a, float(a_next)), (b, float(b_next))


def test_a_fresh_bucket_holds_one_second_of_burst(rclient: redis.Redis) -> None:
    first, after = rate_tokens(rclient, rate=10, tat=NOW, paused=0, take=11)
    assert first == (11, NOW)  # a token every 100 ms, 0 to 1,000 ms ahead
    assert after == (0, NOW + 100)  # the next one in 100 ms


def test_a_slow_rate_still_lets_one_event_go(rclient: redis.Redis) -> None:
    first, after = rate_tokens(rclient, rate=0.1, tat=NOW, paused=0, take=1)
    assert first == (1, NOW)
    assert after == (0, NOW + 9000)


def test_a_paused_platform_has_no_tokens_until_the_pause_ends(rclient: redis.Redis) -> None:
    first, _ = rate_tokens(rclient, rate=10, tat=NOW, paused=NOW + 3000)
    assert first == (0, NOW + 3000)


def rate_throttled(
    rclient: redis.Redis, *, now: int, pause_ms: int = 0, cfg_rate: float = 30
) -> tuple[float, float]:
    """A 429 at `now`: (paused until, the rate in force after it)."""
    body = """
return tostring(rate_throttled(ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5])))"""
    paused = float(run(rclient, body, P, PLATFORM, cfg_rate, pause_ms, now))
    return paused, float(rclient.hget(f"{P}:rate:{PLATFORM}", "rate") or 0)


def test_429s_halve_the_rate_once_a_second_down_to_one_request_in_ten_seconds(
    rclient: redis.Redis,
) -> None:
    assert rate_throttled(rclient, now=NOW, pause_ms=2000) == (NOW + 2000, 15)
    assert rate_throttled(rclient, now=NOW + 500) == (NOW + 2000, 15)  # the pause is kept
    assert rate_throttled(rclient, now=NOW + 1000)[1] == 7.5
    for second in range(2, 12):
        rate_throttled(rclient, now=NOW + second * 1000)
    assert rate_throttled(rclient, now=NOW + 20_000)[1] == 0.1


def test_a_halved_rate_recovers_to_the_configured_one_within_a_minute(
    rclient: redis.Redis,
) -> None:
    body = """
local out = {}
for i, ago in ipairs({0, 10000, 30000, 90000}) do
  redis.call('HSET', key(ARGV[1], 'rate', ARGV[2]), 'rate', 15, 'rate_ms', tonumber(ARGV[3]) - ago)
  out[i] = tostring(rate_load(ARGV[1], ARGV[2], 30, tonumber(ARGV[3])).rate)
end
return out"""
    rates = [float(r) for r in run(rclient, body, P, PLATFORM, NOW)]
    assert rates == [15, 20, 30, 30]


def test_a_platforms_configured_rate_is_its_override_else_the_default(
    rclient: redis.Redis,
) -> None:
    body = """
return {tostring(rate_configured('slow-a', 30, ARGV[1])),
  tostring(rate_configured('acme', 30, ARGV[1]))}"""
    assert run(rclient, body, "OTHER=5,SLOW_A=2.5") == ["2.5", "30"]


# -- the fair share of a wave (claim.lua) -----------------------------------------------------


def ready(rclient: redis.Redis, platform: str, n: int) -> None:
    """`n` ready events of `platform`, live lane, in the claim rotation."""
    for i in range(n):
        event_id = f"{platform}-{i}"
        rclient.hset(f"{P}:ev:{event_id}", mapping={"state": "ready", "platform": platform})
        rclient.zadd(f"{P}:ready:{platform}", {event_id: i})
    rclient.zadd(f"{P}:active", {platform: 0})


def claim_wave(rclient: redis.Redis, max_events: int, token: str = "t") -> Counter[str]:
    """Run claim.lua; how many events of each platform the wave holds."""
    values = {
        "prefix": P,
        "engine": "e",
        "token": token,
        "lease_ms": 60_000,
        "max": max_events,
        "default_rate": 1_000_000,
        "rate_overrides": "",
        "conc_initial": 1000,
        "conc_min": 1,
        "conc_max": 1000,
        "engine_ttl_ms": 10_000,
        "idle_ms": 1000,
    }
    flat, _wait, _more = rclient.eval(script_source("claim"), 0, *ClaimArgs.argv(values))
    return Counter(flat[i + 2] for i in range(0, len(flat), 8))


def test_a_wave_is_shared_one_event_per_platform_per_turn(rclient: redis.Redis) -> None:
    ready(rclient, "big", 1000)
    ready(rclient, "small", 10)
    ready(rclient, "tiny", 1)
    wave = claim_wave(rclient, 12)
    assert wave["tiny"] == 1
    assert sorted([wave["big"], wave["small"]]) == [5, 6]


def test_a_small_platforms_events_all_go_in_the_first_waves(rclient: redis.Redis) -> None:
    ready(rclient, "big", 1000)
    ready(rclient, "small", 10)
    waves = [claim_wave(rclient, 8, token=f"t{n}") for n in range(3)]
    assert [w["small"] for w in waves] == [4, 4, 2]
    assert [w["big"] for w in waves] == [4, 4, 6]


def test_a_platform_held_by_its_cap_leaves_its_turns_to_the_others(
    rclient: redis.Redis,
) -> None:
    ready(rclient, "big", 1000)
    ready(rclient, "small", 10)
    rclient.hset(f"{P}:conc:small", "cap", 2)
    assert claim_wave(rclient, 10) == Counter({"big": 8, "small": 2})


def test_the_rotation_starts_at_the_next_platform_each_claim(rclient: redis.Redis) -> None:
    for platform in ("a", "b", "c"):
        ready(rclient, platform, 10)
    firsts = [next(iter(claim_wave(rclient, 1, token=f"t{n}"))) for n in range(6)]
    assert sorted(firsts[:3]) == ["a", "b", "c"]
    assert firsts[3:] == firsts[:3]
