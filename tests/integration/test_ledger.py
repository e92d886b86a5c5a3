"""The state machine against a real redis-server, one transition at a time (no workers)."""

from __future__ import annotations

import json
import time

import pytest
import redis

from core.ledger import ACCEPTED, ALREADY_DELIVERED, DUPLICATE, Ledger
from core.settings import Settings

pytestmark = pytest.mark.integration


def make(settings: Settings, **changes: object) -> Ledger:
    s = settings.replace(**changes) if changes else settings
    return Ledger(redis.Redis.from_url(s.redis_url), s)


def row(event_id: str, platform: str = "acme") -> tuple[str, str, str, int]:
    body = json.dumps({"id": event_id, "event_type": "HOME"})
    return (event_id, platform, body, int(time.time() * 1000))


def queue_ids(rclient: redis.Redis, queue: str = "eventfwd") -> list[list[str]]:
    """The id lists carried by the Celery messages waiting in `queue`, oldest first."""
    out = []
    for raw in reversed(rclient.lrange(queue, 0, -1)):
        msg = json.loads(raw)
        assert msg["headers"]["task"] == "eventfwd.deliver"
        out.append(json.loads(msg["body"])[0][0])
    return out


def test_enqueue_writes_envelope_schedule_and_message_together(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings)
    assert ledger.enqueue([row("a"), row("b")]) == [ACCEPTED, ACCEPTED]
    assert rclient.hget("eventfwd:ev:a", "state") == "queued"
    assert rclient.zcard("eventfwd:sched:acme") == 2
    assert queue_ids(rclient) == [["a", "b"]]  # one message for the batch (EVENTFWD_BATCH_SIZE)


def test_enqueue_of_a_known_id_changes_nothing_and_sends_nothing(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a")])
    assert ledger.enqueue([row("a")]) == [DUPLICATE]
    assert queue_ids(rclient) == [["a"]]


def test_enqueue_of_a_recently_delivered_id_is_skipped(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a")])
    assert ledger.claim("a", "t").status == "ok"
    assert ledger.ack("a", "t") == (1, False)
    assert ledger.enqueue([row("a")]) == [ALREADY_DELIVERED]
    assert not rclient.exists("eventfwd:ev:a")
    assert rclient.pttl("eventfwd:done:a") > 0


def test_batch_size_puts_several_ids_in_one_message(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings, batch_size=3)
    ledger.enqueue([row(str(i)) for i in range(7)])
    assert queue_ids(rclient) == [["0", "1", "2"], ["3", "4", "5"], ["6"]]


def test_only_one_claim_holds_an_event_at_a_time(settings: Settings) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a")])
    assert ledger.claim("a", "first").status == "ok"
    assert ledger.claim("a", "second").status == "busy"
    # the loser cannot move the event either
    action, _ = ledger.reschedule(
        "a", "second", kind="transient", delay_s=1, status="500", message="x", record={}
    )
    assert action == "lost"


def test_a_scheduled_retry_is_not_claimable_before_its_time(settings: Settings) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a")])
    ledger.claim("a", "t")
    ledger.reschedule("a", "t", kind="transient", delay_s=30, status="503", message="x", record={})
    claim = ledger.claim("a", "u")
    assert claim.status == "notdue"
    assert claim.due_ms is not None and claim.due_ms > time.time() * 1000 + 25_000


def test_attempt_budget_spent_makes_a_dead_letter(settings: Settings, rclient: redis.Redis) -> None:
    ledger = make(settings, max_attempts=2)
    ledger.enqueue([row("a")])
    ledger.claim("a", "t1")
    assert (
        ledger.reschedule(
            "a", "t1", kind="transient", delay_s=0, status="500", message="m1", record={"n": 1}
        )[0]
        == "retry"
    )
    assert ledger.claim("a", "t2").status == "ok"
    assert (
        ledger.reschedule(
            "a", "t2", kind="transient", delay_s=0, status="502", message="m2", record={"n": 2}
        )[0]
        == "dead"
    )
    env = rclient.hgetall("eventfwd:ev:a")
    assert (env["state"], env["reason"], env["last_status"], env["last_message"]) == (
        "dead",
        "retries_exhausted",
        "502",
        "m2",
    )
    assert env["attempts"] == "2"
    assert [json.loads(h) for h in env["history"].splitlines()] == [{"n": 1}, {"n": 2}]
    assert rclient.zscore("eventfwd:dead", "a") is not None
    assert rclient.zcard("eventfwd:sched:acme") == 0


def test_pump_publishes_due_retries(settings: Settings, rclient: redis.Redis) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a")])
    rclient.delete("eventfwd")
    ledger.claim("a", "t")
    ledger.reschedule(
        "a", "t", kind="transient", delay_s=0.05, status="500", message="x", record={}
    )
    time.sleep(0.1)
    assert ledger.pump().published == 1
    assert queue_ids(rclient) == [["a"]]
    assert rclient.hget("eventfwd:ev:a", "state") == "queued"


def test_pump_republishes_an_event_whose_message_was_lost(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings, lease_s=30.0, http_timeout_s=1.0)
    ledger.enqueue([row("a")])
    rclient.delete("eventfwd")  # the message is lost
    assert ledger.pump().published == 0  # not before the republish deadline
    rclient.zadd("eventfwd:sched:acme", {"a": 0})  # deadline passed
    assert ledger.pump().published == 1
    assert queue_ids(rclient) == [["a"]]


def test_pump_reaps_an_expired_lease_and_dead_letters_a_poison_event(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings, poison_threshold=2)
    ledger.enqueue([row("a")])
    for n in (1, 2):
        rclient.delete("eventfwd")
        assert ledger.claim("a", f"t{n}").status == "ok"
        rclient.zadd("eventfwd:sched:acme", {"a": 0})  # the worker died; its lease expired
        result = ledger.pump()
        assert result.reaped == 1
    assert result.poisoned == 1
    assert rclient.hget("eventfwd:ev:a", "reason") == "poison"


def test_replay_gives_a_fresh_budget_and_respects_the_cap(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings, max_attempts=1)
    ledger.enqueue([row("a")])
    ledger.claim("a", "t")
    ledger.reschedule("a", "t", kind="transient", delay_s=0, status="500", message="x", record={})
    assert ledger.replay(["a"], max_replays=1, reasons=["retries_exhausted"]) == (1, 0)
    env = rclient.hgetall("eventfwd:ev:a")
    assert (env["state"], env["attempts"], env["replays"]) == ("scheduled", "0", "1")
    assert "reason" not in env
    ledger.pump()
    ledger.claim("a", "u")
    ledger.reschedule("a", "u", kind="transient", delay_s=0, status="500", message="x", record={})
    assert ledger.replay(["a"], max_replays=1, reasons=["retries_exhausted"]) == (0, 1)
    assert ledger.replay(["a"]) == (1, 0)  # an operator's replay has no cap


def test_replay_by_reason_leaves_permanent_refusals_alone(settings: Settings) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a")])
    ledger.claim("a", "t")
    ledger.dead(
        "a",
        "t",
        reason="rejected",
        status="400",
        message="missing page_id",
        record=None,
        count_attempt=True,
        answered=True,
    )
    assert ledger.replay(["a"], reasons=["retries_exhausted"]) == (0, 1)


def test_purge_deletes_only_dead_letters(settings: Settings, rclient: redis.Redis) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a"), row("b")])
    ledger.claim("a", "t")
    ledger.dead(
        "a",
        "t",
        reason="rejected",
        status="400",
        message="m",
        record=None,
        count_attempt=True,
        answered=True,
    )
    assert ledger.purge(["a", "b", "nope"]) == 1
    assert not rclient.exists("eventfwd:ev:a")
    assert rclient.hget("eventfwd:ev:b", "state") == "queued"


def test_transient_failures_open_the_circuit_and_park_instead_of_spending_attempts(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings, circuit_failure_threshold=2, max_attempts=10)
    ledger.enqueue([row(str(i)) for i in range(4)])
    actions = []
    for i in range(3):
        assert ledger.claim(str(i), "t").status == "ok"
        actions.append(
            ledger.reschedule(
                str(i), "t", kind="transient", delay_s=60, status="503", message="down", record={}
            )
        )
    assert actions == [("retry", False), ("retry", False), ("parked", True)]
    assert rclient.hget("eventfwd:circuit:acme", "state") == "open"
    assert rclient.hget("eventfwd:ev:2", "attempts") == "0"
    assert ledger.claim("3", "t").status == "parked"  # nothing is sent while open
    ledger.enqueue([row("new")])  # new events are parked while open
    assert rclient.hget("eventfwd:ev:new", "state") == "scheduled"


def test_a_successful_probe_closes_the_circuit(settings: Settings, rclient: redis.Redis) -> None:
    ledger = make(settings, circuit_failure_threshold=1)
    ledger.enqueue([row("a"), row("b")])
    for i in ("a", "b"):
        ledger.claim(i, "t")
        ledger.reschedule(
            i, "t", kind="transient", delay_s=0, status="503", message="down", record={}
        )
    assert rclient.hget("eventfwd:circuit:acme", "state") == "open"
    rclient.delete("eventfwd")
    assert ledger.pump().probes == 0  # not before the probe time
    rclient.hset("eventfwd:circuit:acme", "next_probe_ms", 0)
    assert ledger.pump().probes == 1
    assert ledger.pump().probes == 0  # one probe per interval, fleet-wide
    (probe_id,) = queue_ids(rclient)[0]
    other = "b" if probe_id == "a" else "a"
    assert ledger.claim(other, "x").status in ("notdue", "parked")
    claim = ledger.claim(probe_id, "p")
    assert claim.status == "ok" and claim.probe
    assert ledger.ack(probe_id, "p") == (1, True)
    assert rclient.hget("eventfwd:circuit:acme", "state") == "closed"


def test_a_429_halves_the_rate_and_pauses_the_platform(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a"), row("b")])
    ledger.claim("a", "t")
    ledger.reschedule(
        "a",
        "t",
        kind="throttled",
        delay_s=0,
        status="429",
        message="slow down",
        record={},
        rate_per_s=30,
        pause_s=5,
    )
    assert float(rclient.hget("eventfwd:rate:acme", "rate")) == 15
    assert rclient.hget("eventfwd:ev:a", "attempts") == "0"
    claim = ledger.claim("b", "u")
    assert claim.status == "throttled"
    assert claim.due_ms is not None and claim.due_ms >= time.time() * 1000 + 4000


def test_the_send_rate_is_shared_and_the_pump_releases_the_rest_at_that_rate(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings, rate_limit_per_s=10.0, pump_interval_s=0.5)
    ledger.enqueue([row(str(i)) for i in range(60)])
    rclient.delete("eventfwd")
    statuses = [ledger.claim(str(i), "t").status for i in range(60)]
    # one second of burst passes; the rest go back to the schedule, due when a token is
    assert 9 <= statuses.count("ok") <= 12
    throttled = [str(i) for i, s in enumerate(statuses) if s == "throttled"]
    assert len(throttled) == 60 - statuses.count("ok")
    assert all(rclient.hget(f"eventfwd:ev:{i}", "attempts") == "0" for i in throttled)
    time.sleep(0.2)
    # at most twice the rate's share of one pump interval is released per sweep
    assert ledger.pump().published <= 10
    assert ledger.pump().published <= 10


def test_periodic_replay_skips_platforms_whose_circuit_is_open(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings, max_attempts=1)
    ledger.enqueue([row("a")])
    ledger.claim("a", "t")
    ledger.reschedule("a", "t", kind="transient", delay_s=0, status="500", message="x", record={})
    rclient.hset("eventfwd:circuit:acme", "state", "open")
    assert ledger.replay(["a"], reasons=["retries_exhausted"], skip_open_circuits=True) == (0, 1)
    rclient.hset("eventfwd:circuit:acme", "state", "closed")
    assert ledger.replay(["a"], reasons=["retries_exhausted"], skip_open_circuits=True) == (1, 0)


def test_counters_are_kept_per_minute_as_well_as_in_total(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a"), row("b")])
    ledger.claim("a", "t")
    ledger.ack("a", "t")
    minute = int(time.time() // 60)
    buckets = [rclient.hgetall(f"eventfwd:minute:{m}") for m in (minute - 1, minute)]
    assert sum(int(b.get("delivered", 0)) for b in buckets) == 1
    assert sum(int(b.get("enqueued", 0)) for b in buckets) == 2
    assert 0 < rclient.ttl(f"eventfwd:minute:{minute}") <= 7200 or buckets[1] == {}
    assert rclient.hget("eventfwd:stats", "delivered") == "1"


def test_a_burst_of_429s_halves_the_rate_once_per_second(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings)
    ledger.enqueue([row(str(i)) for i in range(3)])
    for i in range(3):
        assert ledger.claim(str(i), "t").status == "ok"
    for i in range(3):
        ledger.reschedule(
            str(i),
            "t",
            kind="throttled",
            delay_s=0,
            status="429",
            message="",
            record={},
            rate_per_s=40,
            pause_s=0,
        )
    assert float(rclient.hget("eventfwd:rate:acme", "rate")) == 15  # 30/s halved once, not thrice


def test_taking_over_an_expired_lease_counts_towards_poison(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings, poison_threshold=2)
    ledger.enqueue([row("a")])
    assert ledger.claim("a", "t1").status == "ok"
    rclient.zadd("eventfwd:sched:acme", {"a": 0})  # lease expired, a redelivered message arrives
    assert ledger.claim("a", "t2").status == "ok"
    rclient.zadd("eventfwd:sched:acme", {"a": 0})
    assert ledger.claim("a", "t3").status == "dead"
    assert rclient.hget("eventfwd:ev:a", "reason") == "poison"
