"""The state machine against a real redis-server, one transition at a time (no workers).

Events are made ready by enqueue and handed out by `claim` under the scheduler's policy
(claim.lua); these tests drive each script through `Ledger` and read the keys it wrote.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
from kombu import Connection

from eventfwd.core.ledger import (
    ACCEPTED,
    ALREADY_DELIVERED,
    DUPLICATE,
    Claim,
    Delivery,
    Ledger,
    Wave,
)
from eventfwd.core.settings import PlatformOverride, Settings
from eventfwd.core.vocabulary import Action, RescheduleKind
from tests.support.ledger import claim_one, claim_ready

pytestmark = pytest.mark.integration

BACKLOG_SCORE = 10_000_000_000_000  # lua/_lib.lua: the backlog lane sorts after every live event


def make(settings: Settings, **changes: object) -> Ledger:
    s = settings.replace(**changes) if changes else settings
    return Ledger(redis.Redis.from_url(s.redis_url), s)


def row(event_id: str, platform: str = "acme") -> tuple[str, str, str, int]:
    body = json.dumps({"id": event_id, "event_type": "HOME"})
    return (event_id, platform, body, int(time.time() * 1000))


def claim(ledger: Ledger, token: str = "t", max_events: int = 100, idle_ms: int = 1000) -> Wave:
    return ledger.claim("test-engine", token, max_events, idle_ms=idle_ms)


def claimed_ids(wave: Wave) -> list[str]:
    return [c.event_id for c in wave.claims]


def fail(ledger: Ledger, c: Claim, *, delay_s: float = 0.0, status: str = "503") -> Action:
    """Record a transient failure of a claimed event; returns the action taken."""
    action, _ = ledger.reschedule(
        c.event_id,
        c.token,
        kind=RescheduleKind.TRANSIENT,
        delay_s=delay_s,
        status=status,
        message="down",
        record={},
    )
    return action


def throttle(ledger: Ledger, c: Claim, *, rate_per_s: float = 30, pause_s: float = 0) -> Action:
    action, _ = ledger.reschedule(
        c.event_id,
        c.token,
        kind=RescheduleKind.THROTTLED,
        delay_s=0,
        status="429",
        message="slow down",
        record={},
        rate_per_s=rate_per_s,
        pause_s=pause_s,
    )
    return action


def block(ledger: Ledger, c: Claim, *, reason: str = "auth") -> tuple[Action, bool]:
    """Record a platform-wide refusal (401) of a claimed event: (action, circuit opened)."""
    return ledger.reschedule(
        c.event_id,
        c.token,
        kind=RescheduleKind.BLOCKED,
        delay_s=0,
        status="401",
        message="bad key",
        record={},
        reason=reason,
    )


def reject(ledger: Ledger, c: Claim) -> bool:
    return ledger.dead(
        c.event_id,
        c.token,
        reason="rejected",
        status="400",
        message="missing page_id",
        record=None,
        count_attempt=True,
        answered=True,
    )


def delivered(*claims: Claim, rtt_ms: int = 20) -> list[Delivery]:
    return [Delivery(c.event_id, c.token, rtt_ms, 200) for c in claims]


def redis_now_ms(rclient: redis.Redis) -> int:
    """Redis's clock, the one the scripts use."""
    seconds, micros = rclient.time()
    return int(seconds) * 1000 + int(micros) // 1000


def wake_ups(redis_url: str, queue: str = "eventfwd") -> list[tuple[dict[str, Any], Any]]:
    """Consume the Celery messages in `queue` through kombu's Redis transport, as a worker
    would: (headers, decoded body) per message, oldest first."""
    out = []
    with Connection(redis_url) as conn:
        q = conn.SimpleQueue(queue, no_ack=True)
        try:
            while True:
                try:
                    message = q.get(block=False)
                except q.Empty:
                    return out
                out.append((message.headers, message.decode()))
        finally:
            q.close()


def expire_leases(rclient: redis.Redis, platform: str, *ids: str) -> None:
    """As if the worker holding these events died and their leases ran out."""
    rclient.zadd(f"eventfwd:inflight:{platform}", dict.fromkeys(ids, 0))


# -- enqueue ----------------------------------------------------------------------------------


def test_enqueue_makes_events_ready_in_the_live_lane_and_wakes_the_fleet(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings)
    before = redis_now_ms(rclient)
    assert ledger.enqueue([row("a"), row("b")]) == [ACCEPTED, ACCEPTED]
    after = redis_now_ms(rclient)
    for event_id in ("a", "b"):
        env = rclient.hgetall(f"eventfwd:ev:{event_id}")
        assert (env["state"], env["platform"], env["attempts"]) == ("ready", "acme", "0")
        assert "lane" not in env  # live
        score = rclient.zscore("eventfwd:ready:acme", event_id)
        assert score is not None and before <= score <= after < BACKLOG_SCORE
    assert rclient.zrange("eventfwd:active", 0, -1) == ["acme"]
    assert rclient.smembers("eventfwd:platforms") == {"acme"}
    assert rclient.lrange("eventfwd:bell", 0, -1) == ["1"]  # one ring, however many events
    assert rclient.hget("eventfwd:stats", "enqueued") == "2"


def test_enqueue_of_a_known_id_changes_nothing(settings: Settings, rclient: redis.Redis) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a")])
    envelope = rclient.hgetall("eventfwd:ev:a")
    assert ledger.enqueue([row("a"), row("b")]) == [DUPLICATE, ACCEPTED]
    assert rclient.hgetall("eventfwd:ev:a") == envelope
    assert rclient.zcard("eventfwd:ready:acme") == 2
    assert rclient.hget("eventfwd:stats", "enqueued") == "2"


def test_enqueue_of_a_recently_delivered_id_is_skipped(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a")])
    c = claim_one(ledger, "a")
    assert ledger.ack(delivered(c)) == ([1], [])
    assert ledger.enqueue([row("a")]) == [ALREADY_DELIVERED]
    assert not rclient.exists("eventfwd:ev:a")
    assert rclient.zcard("eventfwd:ready:acme") == 0
    assert rclient.pttl("eventfwd:done:a") > 0


def test_enqueue_publishes_a_wake_up_only_when_no_engine_is_alive(
    settings: Settings, rclient: redis.Redis, redis_url: str
) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a")])
    ledger.enqueue([row("b")])  # a wake-up is pending: not a second one
    assert len(wake_ups(redis_url)) == 1
    rclient.delete("eventfwd:wake")
    claim(ledger, max_events=0)  # an engine claims (nothing): it is alive
    ledger.enqueue([row("c")])
    assert rclient.llen("eventfwd") == 0


# -- claim: one lease holder, due times ---------------------------------------------------------


def test_a_claim_hands_out_each_event_under_a_lease(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a")])
    before = redis_now_ms(rclient)
    wave = claim(ledger, "t")
    after = redis_now_ms(rclient)

    (a,) = wave.claims
    assert (a.event_id, a.token, a.platform_id, a.attempts, a.replays, a.probe) == (
        "a",
        "t",
        "acme",
        0,
        0,
        False,
    )
    assert json.loads(a.body) == {"id": "a", "event_type": "HOME"}
    assert (wave.wait_ms, wave.more) == (0, False)
    env = rclient.hgetall("eventfwd:ev:a")
    assert (env["state"], env["token"]) == ("inflight", "t")
    assert a.enqueued_ms == int(env["enqueued_ms"])
    lease_ms = int(settings.lease_s * 1000)
    score = rclient.zscore("eventfwd:inflight:acme", "a")
    assert score is not None and before + lease_ms <= score <= after + lease_ms
    assert rclient.zcard("eventfwd:ready:acme") == 0
    assert rclient.zrange("eventfwd:active", 0, -1) == []  # nothing left to claim
    assert rclient.zscore("eventfwd:engines", "test-engine") is not None


def test_only_one_claim_holds_an_event_at_a_time(settings: Settings, rclient: redis.Redis) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a")])
    first = claim_one(ledger, "a", token="first")
    assert claim(ledger, "second").claims == []
    # the loser cannot move the event either
    loser = Claim("a", "second", first.body, "acme")
    assert fail(ledger, loser) == Action.LOST
    assert throttle(ledger, loser) == Action.LOST
    assert reject(ledger, loser) is False
    env = rclient.hgetall("eventfwd:ev:a")
    assert (env["state"], env["token"], env["attempts"]) == ("inflight", "first", "0")


def test_a_scheduled_retry_is_not_claimable_before_its_time(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a")])
    assert fail(ledger, claim_one(ledger, "a"), delay_s=30) == Action.RETRY
    assert rclient.hget("eventfwd:ev:a", "state") == "scheduled"
    due = rclient.zscore("eventfwd:sched:acme", "a")
    assert due is not None and due > redis_now_ms(rclient) + 25_000
    ledger.pump()  # not due: stays scheduled
    wave = claim(ledger, "u")
    assert (wave.claims, wave.wait_ms) == ([], 1000)  # nothing claimable: the idle wait
    assert rclient.hget("eventfwd:ev:a", "state") == "scheduled"


def test_attempt_budget_spent_makes_a_dead_letter(settings: Settings, rclient: redis.Redis) -> None:
    ledger = make(settings, max_attempts=2)
    ledger.enqueue([row("a")])
    kind = RescheduleKind.TRANSIENT
    claim_one(ledger, "a", token="t1")
    first = ledger.reschedule(
        "a", "t1", kind=kind, delay_s=0, status="500", message="m1", record={"n": 1}
    )
    assert first == (Action.RETRY, False)
    ledger.pump()
    assert claim_one(ledger, "a", token="t2").attempts == 1
    second = ledger.reschedule(
        "a", "t2", kind=kind, delay_s=0, status="502", message="m2", record={"n": 2}
    )
    assert second == (Action.DEAD, False)
    env = rclient.hgetall("eventfwd:ev:a")
    assert (env["state"], env["reason"], env["last_status"], env["last_message"]) == (
        "dead",
        "retries_exhausted",
        "502",
        "m2",
    )
    assert env["attempts"] == "2"
    assert "token" not in env
    assert [json.loads(h) for h in env["history"].splitlines()] == [{"n": 1}, {"n": 2}]
    assert rclient.zscore("eventfwd:dead", "a") is not None
    for kind in ("ready", "sched", "inflight"):
        assert rclient.zcard(f"eventfwd:{kind}:acme") == 0
    assert rclient.hget("eventfwd:stats", "dead:retries_exhausted") == "1"


# -- pump ---------------------------------------------------------------------------------------


def test_pump_makes_due_retries_ready(settings: Settings, rclient: redis.Redis) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a")])
    fail(ledger, claim_one(ledger, "a"), delay_s=0.3)
    assert ledger.pump().published == 0  # not due yet
    time.sleep(0.35)
    assert ledger.pump().published == 1
    assert rclient.hget("eventfwd:ev:a", "state") == "ready"
    assert rclient.zrange("eventfwd:ready:acme", 0, -1) == ["a"]
    assert rclient.zrange("eventfwd:active", 0, -1) == ["acme"]
    assert claim_one(ledger, "a").attempts == 1


def test_pump_reaps_an_expired_lease_and_dead_letters_a_poison_event(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings, poison_threshold=2)
    ledger.enqueue([row("a")])
    claim_one(ledger, "a", token="t1")
    expire_leases(rclient, "acme", "a")
    first = ledger.pump()
    assert (first.reaped, first.poisoned) == (1, 0)
    env = rclient.hgetall("eventfwd:ev:a")
    assert (env["state"], env["lease_expiries"]) == ("ready", "1")
    assert "token" not in env
    assert rclient.zcard("eventfwd:inflight:acme") == 0

    claim_one(ledger, "a", token="t2")
    expire_leases(rclient, "acme", "a")
    second = ledger.pump()
    assert (second.reaped, second.poisoned, second.poisoned_ids) == (1, 1, (("a", "acme"),))
    env = rclient.hgetall("eventfwd:ev:a")
    assert (env["state"], env["reason"]) == ("dead", "poison")
    assert rclient.zcard("eventfwd:inflight:acme") == rclient.zcard("eventfwd:ready:acme") == 0
    assert rclient.hget("eventfwd:stats", "dead:poison") == "1"


def test_pump_leaves_a_lease_that_has_not_expired(settings: Settings, rclient: redis.Redis) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a")])
    claim_one(ledger, "a")
    assert ledger.pump().reaped == 0
    assert rclient.hget("eventfwd:ev:a", "state") == "inflight"


def test_pump_forgets_a_platform_with_nothing_left_and_enqueue_brings_it_back(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a"), row("o", "other")])
    ledger.pause_platform("idle", by="ops")  # paused with nothing in the ledger
    claims = claim_ready(ledger)
    ledger.ack(delivered(claims["a"]))
    ledger.pump()  # "acme" has nothing left; "other" has an event in flight
    assert rclient.smembers("eventfwd:platforms") == {"other", "idle"}
    assert rclient.zrange("eventfwd:active", 0, -1) == []
    ledger.ack(delivered(claims["o"]))
    ledger.pump()
    assert rclient.smembers("eventfwd:platforms") == {"idle"}  # a paused platform is kept

    ledger.enqueue([row("b")])
    assert "acme" in rclient.smembers("eventfwd:platforms")
    assert claimed_ids(claim(ledger)) == ["b"]


def test_pump_publishes_a_wake_up_only_when_events_are_ready_and_no_engine_is_alive(
    settings: Settings, rclient: redis.Redis, redis_url: str
) -> None:
    ledger = make(settings)
    ledger.pump()
    assert rclient.llen("eventfwd") == 0  # nothing ready: nothing to wake anyone for
    ledger.enqueue([row("a")])
    rclient.delete("eventfwd", "eventfwd:wake")  # enqueue's own wake-up was lost

    ledger.pump()
    ledger.pump()  # one pending wake-up at a time

    ((headers, body),) = wake_ups(redis_url)
    # Celery task protocol 2: the task name in the headers, the body [args, kwargs, embed]
    assert headers["task"] == "eventfwd.deliver"
    assert headers["lang"] == "py"
    assert headers["id"] == headers["root_id"]
    assert headers["retries"] == 0
    args, kwargs, embed = body
    assert (args, kwargs) == ([], {})
    assert embed == {"callbacks": None, "errbacks": None, "chain": None, "chord": None}

    rclient.delete("eventfwd:wake")
    claim(ledger, max_events=0)  # an engine is alive (it claims at least once a second)
    ledger.pump()
    assert rclient.llen("eventfwd") == 0


# -- replay and purge ---------------------------------------------------------------------------


def test_replay_gives_a_fresh_budget_and_respects_the_cap(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings, max_attempts=1)
    ledger.enqueue([row("a")])
    assert fail(ledger, claim_one(ledger, "a")) == Action.DEAD
    assert ledger.replay(["a"], max_replays=1, reasons=["retries_exhausted"]) == (1, 0)
    env = rclient.hgetall("eventfwd:ev:a")
    assert (env["state"], env["attempts"], env["replays"], env["lane"]) == (
        "ready",
        "0",
        "1",
        "backlog",
    )
    assert "reason" not in env and "dead_ms" not in env
    assert rclient.zscore("eventfwd:dead", "a") is None
    score = rclient.zscore("eventfwd:ready:acme", "a")
    assert score is not None and score > BACKLOG_SCORE
    replayed = claim_one(ledger, "a", token="u")
    assert (replayed.replays, replayed.attempts) == (1, 0)
    assert fail(ledger, replayed) == Action.DEAD
    assert ledger.replay(["a"], max_replays=1, reasons=["retries_exhausted"]) == (0, 1)
    assert ledger.replay(["a"]) == (1, 0)  # an operator's replay has no cap
    assert ledger.replay(["a", "nope"]) == (0, 2)  # not dead letters: skipped
    assert rclient.hget("eventfwd:stats", "replayed") == "2"


def test_replay_by_reason_leaves_permanent_refusals_alone(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a")])
    assert reject(ledger, claim_one(ledger, "a"))
    assert ledger.replay(["a"], reasons=["retries_exhausted"]) == (0, 1)
    assert rclient.hget("eventfwd:ev:a", "state") == "dead"
    assert ledger.replay(["a"], reasons=["rejected"]) == (1, 0)


def test_periodic_replay_skips_platforms_whose_circuit_is_open(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings, max_attempts=1)
    ledger.enqueue([row("a")])
    fail(ledger, claim_one(ledger, "a"), status="500")
    rclient.hset("eventfwd:circuit:acme", "state", "open")
    assert ledger.replay(["a"], reasons=["retries_exhausted"], skip_open_circuits=True) == (0, 1)
    assert rclient.hget("eventfwd:ev:a", "state") == "dead"
    rclient.hset("eventfwd:circuit:acme", "state", "closed")
    assert ledger.replay(["a"], reasons=["retries_exhausted"], skip_open_circuits=True) == (1, 0)
    assert rclient.hget("eventfwd:ev:a", "state") == "ready"


def test_an_operators_replay_during_an_outage_parks_the_event(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings, max_attempts=1)
    ledger.enqueue([row("a")])
    fail(ledger, claim_one(ledger, "a"), status="500")
    rclient.hset("eventfwd:circuit:acme", "state", "open")
    assert ledger.replay(["a"]) == (1, 0)
    env = rclient.hgetall("eventfwd:ev:a")
    assert (env["state"], env["lane"]) == ("scheduled", "backlog")
    assert claim(ledger).claims == []


def test_purge_deletes_only_dead_letters(settings: Settings, rclient: redis.Redis) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a"), row("b")])
    (a,) = claim(ledger, max_events=1).claims
    reject(ledger, a)
    assert ledger.purge([a.event_id, "b", "nope"]) == 1
    assert not rclient.exists(f"eventfwd:ev:{a.event_id}")
    assert rclient.zcard("eventfwd:dead") == 0
    assert rclient.hget("eventfwd:ev:b", "state") == "ready"
    assert rclient.hget("eventfwd:stats", "purged") == "1"
    assert ledger.purge([]) == 0


# -- the circuit ------------------------------------------------------------------------------


def test_transient_failures_open_the_circuit_and_park_instead_of_spending_attempts(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings, circuit_failure_threshold=2, max_attempts=10)
    ledger.enqueue([row(str(i)) for i in range(4)])
    claims = claim(ledger, max_events=3).claims
    outcomes = [
        ledger.reschedule(
            c.event_id,
            c.token,
            kind=RescheduleKind.TRANSIENT,
            delay_s=60,
            status="503",
            message="down",
            record={},
        )
        for c in claims
    ]
    assert outcomes == [(Action.RETRY, False), (Action.RETRY, False), (Action.PARKED, True)]
    circuit = rclient.hgetall("eventfwd:circuit:acme")
    assert (circuit["state"], circuit["reason"], circuit["failures"]) == ("open", "outage", "3")
    parked = rclient.hgetall(f"eventfwd:ev:{claims[2].event_id}")
    assert (parked["state"], parked["attempts"], parked["lane"]) == ("scheduled", "0", "backlog")
    # nothing is sent while open: the event still ready is not claimed, the pump parks it
    assert claim(ledger).claims == []
    assert rclient.zrange("eventfwd:active", 0, -1) == []
    ledger.pump()
    assert rclient.hget("eventfwd:ev:3", "state") == "scheduled"
    assert rclient.zcard("eventfwd:ready:acme") == 0
    ledger.enqueue([row("new")])  # new events are parked while open
    env = rclient.hgetall("eventfwd:ev:new")
    assert (env["state"], env["lane"]) == ("scheduled", "backlog")
    assert claim(ledger).claims == []
    assert rclient.hget("eventfwd:stats", "circuit_opened") == "1"


def test_a_delivered_probe_closes_the_circuit_and_reactivates_the_platform(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings, circuit_failure_threshold=1)
    ledger.enqueue([row("a"), row("b")])
    for c in claim(ledger).claims:
        fail(ledger, c)
    assert rclient.hget("eventfwd:circuit:acme", "state") == "open"
    assert ledger.pump().probes == 0  # not before the probe time
    rclient.hset("eventfwd:circuit:acme", "next_probe_ms", 0)
    assert ledger.pump().probes == 1
    assert ledger.pump().probes == 0  # one probe per interval, fleet-wide
    probe_id = rclient.hget("eventfwd:circuit:acme", "probe_id")
    other = "b" if probe_id == "a" else "a"

    wave = claim(ledger, "p")
    (probe,) = wave.claims  # the probe, and nothing else
    assert (probe.event_id, probe.probe) == (probe_id, True)
    assert claim(ledger, "q").claims == []
    assert ledger.ack(delivered(probe)) == ([1], ["acme"])
    circuit = rclient.hgetall("eventfwd:circuit:acme")
    assert (circuit["state"], circuit["failures"]) == ("closed", "0")
    assert "probe_id" not in circuit and "closed_ms" in circuit
    assert rclient.hget("eventfwd:stats", "circuit_closed") == "1"

    assert ledger.pump().published == 1  # what was parked is released
    assert rclient.zrange("eventfwd:active", 0, -1) == ["acme"]
    assert claimed_ids(claim(ledger)) == [other]


def test_an_operator_reset_closes_the_circuit_and_the_pump_releases_parked_events(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a"), row("b")])
    c = claim(ledger, max_events=1).claims[0]
    assert block(ledger, c) == (Action.PARKED, True)
    ledger.pump()
    assert rclient.zcard("eventfwd:sched:acme") == 2
    assert ledger.reset_circuit("acme") is True
    assert rclient.hget("eventfwd:circuit:acme", "state") == "closed"
    assert ledger.reset_circuit("acme") is False
    assert ledger.pump().published == 2
    wave = claim(ledger)
    assert sorted(claimed_ids(wave)) == ["a", "b"]
    assert all(c.attempts == 0 for c in wave.claims)
    assert rclient.hget("eventfwd:stats", "circuit_closed") == "1"


# -- rate, 429 ----------------------------------------------------------------------------------


def test_a_429_halves_the_rate_and_pauses_the_platform(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a"), row("b")])
    a = claim(ledger, max_events=1).claims[0]
    assert float(rclient.hget("eventfwd:rate:acme", "rate")) == 30
    assert throttle(ledger, a, rate_per_s=30, pause_s=5) == Action.RETRY
    now = redis_now_ms(rclient)
    assert float(rclient.hget("eventfwd:rate:acme", "rate")) == 15
    env = rclient.hgetall(f"eventfwd:ev:{a.event_id}")
    assert (env["state"], env["attempts"]) == ("scheduled", "0")
    due = rclient.zscore("eventfwd:sched:acme", a.event_id)
    assert due is not None and due >= now + 4000
    wave = claim(ledger, "u", idle_ms=10_000)
    assert wave.claims == []  # the other event is ready, but the platform is paused
    assert 4000 <= wave.wait_ms <= 5000
    assert rclient.hget("eventfwd:stats", "throttled") == "1"


def test_a_burst_of_429s_halves_the_rate_once_per_second(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings)
    ledger.enqueue([row(str(i)) for i in range(3)])
    for c in claim(ledger).claims:
        throttle(ledger, c, rate_per_s=30, pause_s=0)
    assert float(rclient.hget("eventfwd:rate:acme", "rate")) == 15  # halved once, not thrice


def test_the_send_rate_is_shared_and_a_claim_takes_no_more_than_the_tokens(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings, rate_limit_per_s=10.0, concurrency_initial=100)
    other_process = make(settings, rate_limit_per_s=10.0, concurrency_initial=100)
    ledger.enqueue([row(str(i)) for i in range(60)])

    wave = claim(ledger)
    # one second of burst passes (a token every 100 ms, 0 to 1,000 ms ahead); the rest stay
    # ready, untouched, for when a token is
    assert len(wave.claims) == 11
    again = other_process.claim("engine-2", "u", 100)
    assert again.claims == []
    assert 1 <= again.wait_ms <= 100
    assert rclient.zcard("eventfwd:ready:acme") == 49
    rate, rate_ms, tat_ms = rclient.hmget("eventfwd:rate:acme", "rate", "rate_ms", "tat_ms")
    assert float(rate) == 10
    assert float(tat_ms) - float(rate_ms) == pytest.approx(1100)
    since_ms = redis_now_ms(rclient)
    time.sleep(0.25)  # a token every 100 ms: at least one, and no more than the time allows
    taken = len(other_process.claim("engine-2", "u", 100).claims)
    assert 1 <= taken <= 1 + (redis_now_ms(rclient) - since_ms) // 100


def test_each_platform_has_its_own_send_rate(settings: Settings, rclient: redis.Redis) -> None:
    ledger = make(
        settings,
        platforms={
            "SLOW_A": PlatformOverride(rate_limit_per_s=1.0),
            "SLOW_B": PlatformOverride(rate_limit_per_s=2.0),
        },
    )
    ledger.enqueue([row(f"a{i}", "slow-a") for i in range(5)])
    ledger.enqueue([row(f"b{i}", "slow-b") for i in range(5)])
    ids = claimed_ids(claim(ledger))
    assert sorted(i for i in ids if i.startswith("a")) == ["a0", "a1"]  # 1/s: two go
    assert sorted(i for i in ids if i.startswith("b")) == ["b0", "b1", "b2"]  # 2/s: three


# -- counters and ack -------------------------------------------------------------------------


def test_counters_are_kept_per_minute_as_well_as_in_total(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a"), row("b")])
    ledger.ack(delivered(claim(ledger, max_events=1).claims[0]))
    minute = int(time.time() // 60)
    buckets = [rclient.hgetall(f"eventfwd:minute:{m}") for m in (minute - 1, minute)]
    assert sum(int(b.get("delivered", 0)) for b in buckets) == 1
    assert sum(int(b.get("enqueued", 0)) for b in buckets) == 2
    assert 0 < rclient.ttl(f"eventfwd:minute:{minute}") <= 7200 or buckets[1] == {}
    assert rclient.hget("eventfwd:stats", "delivered") == "1"
    assert rclient.hget("eventfwd:pstats:acme", "delivered") == "1"
    pbuckets = [rclient.hgetall(f"eventfwd:pminute:acme:{m}") for m in (minute - 1, minute)]
    assert sum(int(b.get("enqueued", 0)) for b in pbuckets) == 2


def test_ack_answers_held_per_id_and_each_closed_circuit_once(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings)
    ledger.enqueue([row("b")])
    (b,) = claim(ledger, "other").claims
    ledger.enqueue([row("a"), row("c"), row("d1", "down"), row("d2", "down")])
    claims = claim_ready(ledger, "t")
    assert set(claims) == {"a", "c", "d1", "d2"}
    # "down" failed while d1 and d2 were on their way; both come back 2xx
    rclient.hset("eventfwd:circuit:down", mapping={"state": "open", "failures": 7})
    gone = Claim("gone", "t", "{}", "acme")
    order = [claims["a"], Claim("b", "t", b.body, "acme"), gone, claims["d1"], claims["d2"]]

    held, closed = ledger.ack(delivered(*order, claims["c"]))

    assert held == [1, 0, -1, 1, 1, 1]
    assert closed == ["down"]  # once, though two of its ids closed it
    for event_id in ("a", "b", "c", "d1", "d2"):
        assert not rclient.exists(f"eventfwd:ev:{event_id}")
    for event_id in ("a", "b", "c", "d1", "d2", "gone"):
        assert rclient.pttl(f"eventfwd:done:{event_id}") > 0
    for platform in ("acme", "down"):
        for kind in ("ready", "sched", "inflight"):
            assert rclient.zcard(f"eventfwd:{kind}:{platform}") == 0
    circuit = rclient.hgetall("eventfwd:circuit:down")
    assert (circuit["state"], circuit["failures"]) == ("closed", "0")
    assert "closed_ms" in circuit
    assert rclient.hget("eventfwd:circuit:acme", "state") == "closed"
    assert rclient.hget("eventfwd:stats", "circuit_closed") == "1"
    assert rclient.hget("eventfwd:stats", "delivered") == "5"  # "gone" was not counted
    assert rclient.hget("eventfwd:pstats:acme", "delivered") == "3"
    assert rclient.hget("eventfwd:pstats:down", "delivered") == "2"
    # a second ack of the same ids finds them gone and closes nothing
    assert ledger.ack(delivered(claims["a"], claims["d1"])) == ([-1, -1], [])
    assert rclient.hget("eventfwd:stats", "delivered") == "5"
    assert ledger.ack([]) == ([], [])


def test_ack_reports_every_platform_whose_circuit_closed(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a1", "down-a"), row("b1", "down-b"), row("a2", "down-a"), row("c")])
    claims = claim_ready(ledger)
    for platform in ("down-a", "down-b"):
        rclient.hset(f"eventfwd:circuit:{platform}", "state", "open")
    order = [claims[i] for i in ("a1", "b1", "a2", "c", "a1")]

    held, closed = ledger.ack(delivered(*order))

    assert held == [1, 1, 1, 1, -1]  # the same id twice: the second finds it gone
    assert sorted(closed) == ["down-a", "down-b"]
    assert rclient.hget("eventfwd:stats", "circuit_closed") == "2"


def test_ack_keeps_a_delivery_record(settings: Settings, rclient: redis.Redis) -> None:
    ledger = make(settings, delivered_ttl_s=3600.0)
    ledger.enqueue([row("a")])
    fail(ledger, claim_one(ledger, "a"))
    ledger.pump()
    a = claim_one(ledger, "a", token="u")
    enqueued_ms = rclient.hget("eventfwd:ev:a", "enqueued_ms")
    before = redis_now_ms(rclient)
    ledger.ack([Delivery("a", "u", 87, 202), Delivery("gone", "u", 5, 200)])
    after = redis_now_ms(rclient)

    record = rclient.hgetall("eventfwd:done:a")
    assert before <= int(record.pop("delivered_ms")) <= after
    assert record == {
        "attempts": "2",  # one failure, then this delivery
        "status": "202",
        "rtt_ms": "87",
        "platform": "acme",
        "enqueued_ms": enqueued_ms,
    }
    assert a.attempts == 1
    assert 3_590_000 < rclient.pttl("eventfwd:done:a") <= 3_600_000
    gone = rclient.hgetall("eventfwd:done:gone")  # acked without an envelope: what is known
    assert set(gone) == {"delivered_ms", "status", "rtt_ms"}


# -- the scheduler's policy: fair share, lanes, in-flight cap, pause ---------------------------


def test_a_small_platform_gets_its_share_of_the_first_waves_beside_a_large_backlog(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(
        settings, rate_limit_per_s=100_000.0, concurrency_initial=200, concurrency_max=200
    )
    ledger.enqueue([row(f"big{i}", "big") for i in range(1000)])
    ledger.enqueue([row(f"small{i}", "small") for i in range(10)])

    waves = [claimed_ids(claim(ledger, f"t{n}", max_events=8)) for n in range(3)]

    for wave in waves[:2]:  # one event per platform per turn
        assert sum(i.startswith("small") for i in wave) == 4
        assert sum(i.startswith("big") for i in wave) == 4
    assert sorted(i for w in waves for i in w if i.startswith("small")) == sorted(
        f"small{i}" for i in range(10)
    )
    assert len(waves[2]) == 8  # the large one takes what the small one leaves
    assert rclient.zcard("eventfwd:ready:big") == 1000 - 14
    assert rclient.zrange("eventfwd:active", 0, -1) == ["big"]


def test_the_live_lane_is_claimed_before_the_backlog(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings, max_attempts=1)
    ledger.enqueue([row("old")])
    fail(ledger, claim_one(ledger, "old"))  # the oldest event becomes a dead letter
    ledger.replay(["old"])
    ledger.enqueue([row("new1")])
    ledger.enqueue([row("new2")])
    assert [claimed_ids(claim(ledger, max_events=1)) for _ in range(3)] == [
        ["new1"],
        ["new2"],
        ["old"],
    ]


def test_claim_never_hands_out_more_than_the_in_flight_cap(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings, concurrency_initial=3, concurrency_max=3)
    ledger.enqueue([row(str(i)) for i in range(10)] + [row("x", "other")])
    first = claim(ledger)
    assert sorted(claimed_ids(first)) == ["0", "1", "2", "x"]
    held = claim(ledger, "u")
    assert held.claims == []
    assert held.wait_ms == 50  # held back only by the cap: looked at again soon
    acme = [c for c in first.claims if c.platform_id == "acme"]
    ledger.ack(delivered(acme[0]))
    assert claimed_ids(claim(ledger, "v")) == ["3"]  # one slot free, one event
    reject(ledger, acme[1])  # a refusal says nothing about congestion: the cap stays
    reject(ledger, acme[2])
    assert claimed_ids(claim(ledger, "w")) == ["4", "5"]
    assert rclient.zcard("eventfwd:inflight:acme") == 3


def test_an_expired_lease_no_longer_counts_against_the_cap(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings, concurrency_initial=2, concurrency_max=2)
    ledger.enqueue([row(str(i)) for i in range(5)])
    assert claimed_ids(claim(ledger)) == ["0", "1"]
    assert claim(ledger, "u").claims == []
    expire_leases(rclient, "acme", "0")  # its worker died
    assert claimed_ids(claim(ledger, "v")) == ["2"]
    assert claim(ledger, "w").claims == []


def test_deliveries_grow_the_in_flight_cap_and_failures_halve_it(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings, concurrency_initial=4, concurrency_min=1, concurrency_max=6)
    ledger.enqueue([row(str(i)) for i in range(20)])
    first = claim(ledger).claims
    assert len(first) == 4
    ledger.ack(delivered(*first))  # the cap was in use: slow start, one per delivery
    assert float(rclient.hget("eventfwd:conc:acme", "cap")) == 6  # not past the maximum
    second = claim(ledger, "u").claims
    assert len(second) == 6
    fail(ledger, second[0])  # a transient failure halves it
    assert float(rclient.hget("eventfwd:conc:acme", "cap")) == 3
    fail(ledger, second[1])  # once per window: the same congestion
    assert float(rclient.hget("eventfwd:conc:acme", "cap")) == 3
    assert claim(ledger, "v").claims == []  # 4 still in flight, above the new cap


def test_a_429_and_a_much_slower_round_trip_halve_the_cap(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings, concurrency_initial=8, concurrency_max=8)
    ledger.enqueue([row(str(i)) for i in range(4)] + [row(f"s{i}", "slow") for i in range(4)])
    claims = claim_ready(ledger)
    throttle(ledger, claims["0"])
    assert float(rclient.hget("eventfwd:conc:acme", "cap")) == 4
    ledger.ack(delivered(claims["s0"], rtt_ms=50))
    assert float(rclient.hget("eventfwd:conc:slow", "cap")) == 8
    ledger.ack(delivered(claims["s1"], rtt_ms=400))  # well over twice the usual 50 ms + 100
    assert float(rclient.hget("eventfwd:conc:slow", "cap")) == 4


def test_a_paused_platform_keeps_its_events_and_resume_makes_them_claimable(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a"), row("b"), row("x", "other")])
    assert ledger.pause_platform("acme", by="ops", reason="campaign fix") is True
    assert ledger.pause_platform("acme", by="ops") is False
    pause = rclient.hgetall("eventfwd:pause:acme")
    assert (pause["by"], pause["reason"]) == ("ops", "campaign fix")
    ledger.enqueue([row("c")])

    assert claimed_ids(claim(ledger)) == ["x"]  # the others' events still go
    assert claim(ledger, "u").claims == []
    ledger.pump()
    assert sorted(rclient.zrange("eventfwd:ready:acme", 0, -1)) == ["a", "b", "c"]
    assert "acme" in rclient.smembers("eventfwd:platforms")

    assert ledger.resume_platform("acme", by="ops") is True
    assert ledger.resume_platform("acme", by="ops") is False
    assert not rclient.exists("eventfwd:pause:acme")
    assert sorted(claimed_ids(claim(ledger, "v"))) == ["a", "b", "c"]
    stats = rclient.hgetall("eventfwd:pstats:acme")
    assert (stats["paused"], stats["resumed"]) == ("1", "1")


def test_a_paused_platforms_retries_stay_scheduled_until_resume(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a")])
    fail(ledger, claim_one(ledger, "a"))
    ledger.pause_platform("acme", by="ops")
    assert ledger.pump().published == 0
    assert rclient.hget("eventfwd:ev:a", "state") == "scheduled"
    ledger.resume_platform("acme", by="ops")
    assert ledger.pump().published == 1
    assert claimed_ids(claim(ledger)) == ["a"]


def test_a_late_delivery_of_a_dead_letter_takes_it_out_of_the_dead_letters(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings, poison_threshold=1)
    ledger.enqueue([row("a")])
    late = claim_one(ledger, "a", token="hung")
    expire_leases(rclient, "acme", "a")
    assert ledger.pump().poisoned == 1  # its worker looked dead
    # ... but its POST went through after all: a 2xx is the truth
    assert ledger.ack(delivered(late)) == ([0], [])
    assert not rclient.exists("eventfwd:ev:a")
    assert rclient.exists("eventfwd:done:a")
    assert rclient.zscore("eventfwd:dead", "a") is None


def test_a_claim_whose_answer_is_lost_is_not_repeated_but_an_ack_is(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = Ledger(redis.Redis.from_url(settings.redis_url), settings, retry_budget_s=5)
    ledger.enqueue([row(str(i)) for i in range(4)])
    calls: dict[str, int] = {"claim": 0, "ack": 0}

    def losing(name: str, lose_after: bool) -> Any:
        script = ledger._scripts[name]

        def run(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            if calls[name] == 1:
                if lose_after:  # Redis ran it; the answer never came back
                    script(*args, **kwargs)
                raise redis.ConnectionError("Connection closed by server.")
            return script(*args, **kwargs)

        return run

    ledger._scripts["claim"] = losing("claim", lose_after=True)
    with pytest.raises(redis.ConnectionError):
        claim(ledger, "lost", max_events=2)
    # not repeated: a second wave under the same token would strand the first till its leases
    assert calls["claim"] == 1
    assert rclient.zcard("eventfwd:inflight:acme") == 2
    wave = claim(ledger, "next", max_events=10)
    assert len(wave.claims) == 2  # the other two; the lost wave's come back with their leases

    ledger._scripts["ack"] = losing("ack", lose_after=False)
    assert ledger.ack([Delivery(c.event_id, c.token, 5, 200) for c in wave.claims])[0] == [1, 1]
    assert calls["ack"] == 2  # the lost call was retried within the budget
