"""The state machine against a real redis-server, one transition at a time (no workers)."""

from __future__ import annotations

import json
import time

import pytest
import redis

from eventfwd.core.ledger import ACCEPTED, ALREADY_DELIVERED, DUPLICATE, Ledger
from eventfwd.core.settings import PlatformOverride, Settings

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
    # one call, so one clock: exactly the burst passes
    statuses = [c.status for c in ledger.claim_many([str(i) for i in range(60)], "t")]
    # one second of burst passes (a token every 100 ms, 0 to 1,000 ms ahead); the rest go back
    # to the schedule, due when a token is
    assert statuses.count("ok") == 11
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


# -- claim_many / ack_many: a list of ids in one call -----------------------------------------


def redis_now_ms(rclient: redis.Redis) -> int:
    """Redis's clock, the one the scripts use."""
    seconds, micros = rclient.time()
    return int(seconds) * 1000 + int(micros) // 1000


def rate_state(rclient: redis.Redis, platform: str) -> tuple[float, int, int]:
    """(rate, rate_ms, tat_ms) as the claim script wrote them back."""
    rate, rate_ms, tat_ms = rclient.hmget(f"eventfwd:rate:{platform}", "rate", "rate_ms", "tat_ms")
    assert rate is not None and rate_ms is not None and tat_ms is not None
    return float(rate), int(float(rate_ms)), int(float(tat_ms))


def test_claim_many_answers_every_id_in_order(settings: Settings, rclient: redis.Redis) -> None:
    # "slow" may send one event a second: with one second of burst, two go and the rest wait
    ledger = make(settings, platforms={"SLOW": PlatformOverride(rate_limit_per_s=1.0)})
    ledger.enqueue([row("a"), row("b"), row("d"), row("x")])
    ledger.enqueue([row(f"s{i}", "slow") for i in range(1, 5)] + [row("p", "down")])
    assert ledger.claim("d", "earlier").status == "ok"
    assert ledger.ack("d", "earlier") == (1, False)
    assert ledger.claim("x", "earlier").status == "ok"
    assert ledger.dead(
        "x",
        "earlier",
        reason="rejected",
        status="400",
        message="m",
        record=None,
        count_attempt=True,
        answered=True,
    )
    rclient.hset("eventfwd:circuit:down", "state", "open")
    ids = ["a", "nope", "d", "b", "b", "s1", "s2", "s3", "s4", "p", "x"]

    before = redis_now_ms(rclient)
    claims = ledger.claim_many(ids, "t")
    after = redis_now_ms(rclient)

    assert [c.status for c in claims] == [
        "ok", "gone", "delivered", "ok", "busy", "ok", "ok", "throttled", "throttled",
        "parked", "dead",
    ]  # fmt: skip
    a, b = claims[0], claims[3]
    assert (a.platform_id, a.attempts, a.probe) == ("acme", 0, False)
    assert json.loads(a.body) == {"id": "a", "event_type": "HOME"}
    assert json.loads(b.body)["id"] == "b"
    assert claims[5].platform_id == claims[6].platform_id == "slow"
    for event_id in ("a", "b", "s1", "s2"):
        env = rclient.hgetall(f"eventfwd:ev:{event_id}")
        assert (env["state"], env["token"]) == ("inflight", "t")
    # the lease: due back on the schedule a lease from now
    lease_ms = int(settings.lease_s * 1000)
    score = rclient.zscore("eventfwd:sched:acme", "a")
    assert score is not None and before + lease_ms <= score <= after + lease_ms

    # over the burst: back on the schedule, due when the next token is, no lease, no attempt
    s3, s4 = claims[7], claims[8]
    assert s3.due_ms is not None and before + 1000 <= s3.due_ms <= after + 1000
    assert s4.due_ms == s3.due_ms  # no slot is reserved: both wait for the same token
    for event_id in ("s3", "s4"):
        env = rclient.hgetall(f"eventfwd:ev:{event_id}")
        assert env["state"] == "scheduled"
        assert "token" not in env
        assert env["attempts"] == "0"
        assert rclient.zscore("eventfwd:sched:slow", event_id) == s3.due_ms
    # circuit open: parked on the schedule, due now, no lease
    parked = rclient.hgetall("eventfwd:ev:p")
    assert parked["state"] == "scheduled" and "token" not in parked
    p_score = rclient.zscore("eventfwd:sched:down", "p")
    assert p_score is not None and before <= p_score <= after
    # the ids that were not claimable are left as they were
    assert not rclient.exists("eventfwd:ev:nope")
    assert rclient.hget("eventfwd:ev:x", "state") == "dead"
    assert not rclient.exists("eventfwd:ev:d")
    assert [c.due_ms for c in claims if c.status not in ("throttled",)] == [None] * 9


def test_claim_of_one_id_answers_like_claim_many(settings: Settings) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a")])
    assert ledger.claim_many([], "t") == []
    assert ledger.claim("nope", "t").status == "gone"
    claim = ledger.claim("a", "t")
    assert (claim.status, claim.platform_id) == ("ok", "acme")
    assert ledger.claim_many(["a"], "u")[0].status == "busy"


def test_claim_many_writes_the_rate_back_once_so_the_next_call_continues_the_same_gcra(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings, platforms={"SLOW": PlatformOverride(rate_limit_per_s=1.0)})
    ledger.enqueue([row(f"s{i}", "slow") for i in range(6)])

    first = ledger.claim_many(["s0", "s1", "s2"], "t1")

    assert [c.status for c in first] == ["ok", "ok", "throttled"]
    rate, rate_ms, tat_ms = rate_state(rclient, "slow")
    # what was written is the state after both tokens of the call, not after the first only
    assert rate == 1.0
    assert tat_ms - rate_ms == 2000
    assert first[2].due_ms == tat_ms - 1000

    # the next call (well within the second) starts from that state: no fresh burst
    second = ledger.claim_many(["s3", "s4"], "t2")

    assert [c.status for c in second] == ["throttled", "throttled"]
    assert [c.due_ms for c in second] == [tat_ms - 1000] * 2
    assert rate_state(rclient, "slow")[2] == tat_ms  # throttled ids take no token
    assert rclient.hget("eventfwd:ev:s5", "state") == "queued"  # not in either call


def test_claim_many_keeps_one_send_rate_per_platform(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(
        settings,
        platforms={
            "SLOW_A": PlatformOverride(rate_limit_per_s=1.0),
            "SLOW_B": PlatformOverride(rate_limit_per_s=1.0),
        },
    )
    ids_a = [f"a{i}" for i in range(4)]
    ids_b = [f"b{i}" for i in range(4)]
    ledger.enqueue([row(i, "slow-a") for i in ids_a] + [row(i, "slow-b") for i in ids_b])
    interleaved = [i for pair in zip(ids_a, ids_b, strict=True) for i in pair]

    claims = dict(zip(interleaved, ledger.claim_many(interleaved, "t"), strict=True))

    # each platform's burst is its own: two of each go
    assert [claims[i].status for i in ids_a] == ["ok", "ok", "throttled", "throttled"]
    assert [claims[i].status for i in ids_b] == ["ok", "ok", "throttled", "throttled"]
    for platform in ("slow-a", "slow-b"):
        _rate, rate_ms, tat_ms = rate_state(rclient, platform)
        assert tat_ms - rate_ms == 2000


def test_throttled_local_counts_every_throttled_id_of_a_call(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(
        settings,
        platforms={
            "SLOW": PlatformOverride(rate_limit_per_s=1.0),
            "OTHER": PlatformOverride(rate_limit_per_s=2.0),
        },
    )
    slow = [f"s{i}" for i in range(7)]
    other = [f"o{i}" for i in range(5)]
    ledger.enqueue([row(i, "slow") for i in slow] + [row(i, "other") for i in other])

    statuses = [c.status for c in ledger.claim_many(slow + other + ["nope"], "t")]

    # rate 1/s: 2 go (5 wait); rate 2/s: 3 go (2 wait)
    assert statuses.count("ok") == 5
    assert statuses.count("throttled") == 7
    assert rclient.hget("eventfwd:stats", "throttled_local") == "7"
    assert rclient.hget("eventfwd:pstats:slow", "throttled_local") == "5"
    assert rclient.hget("eventfwd:pstats:other", "throttled_local") == "2"
    minute = int(time.time() // 60)
    buckets = [rclient.hgetall(f"eventfwd:minute:{m}") for m in (minute - 1, minute)]
    assert sum(int(b.get("throttled_local", 0)) for b in buckets) == 7
    # asked again before their time they are not due (not throttled again): no more counted
    assert {c.status for c in ledger.claim_many(slow[2:], "u")} == {"notdue"}
    assert rclient.hget("eventfwd:stats", "throttled_local") == "7"


def test_ack_many_answers_held_per_id_and_each_closed_circuit_once(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a"), row("b"), row("c"), row("d1", "down"), row("d2", "down")])
    assert [c.status for c in ledger.claim_many(["a", "c", "d1", "d2"], "t")] == ["ok"] * 4
    assert ledger.claim("b", "other").status == "ok"
    # "down" failed while d1 and d2 were on their way; both come back 2xx
    rclient.hset("eventfwd:circuit:down", mapping={"state": "open", "failures": 7})

    held, closed = ledger.ack_many(["a", "b", "gone", "d1", "d2", "c"], "t")

    assert held == [1, 0, -1, 1, 1, 1]
    assert closed == ["down"]  # once, though two of its ids closed it
    for event_id in ("a", "b", "c", "d1", "d2"):
        assert not rclient.exists(f"eventfwd:ev:{event_id}")
    for event_id in ("a", "b", "c", "d1", "d2", "gone"):
        assert rclient.pttl(f"eventfwd:done:{event_id}") > 0
    assert rclient.zcard("eventfwd:sched:acme") == rclient.zcard("eventfwd:sched:down") == 0
    circuit = rclient.hgetall("eventfwd:circuit:down")
    assert (circuit["state"], circuit["failures"]) == ("closed", "0")
    assert "closed_ms" in circuit
    assert rclient.hget("eventfwd:circuit:acme", "state") == "closed"
    assert rclient.hget("eventfwd:stats", "circuit_closed") == "1"
    assert rclient.hget("eventfwd:stats", "delivered") == "5"  # "gone" was not counted
    assert rclient.hget("eventfwd:pstats:acme", "delivered") == "3"
    assert rclient.hget("eventfwd:pstats:down", "delivered") == "2"
    # a second ack of the same ids finds them gone and closes nothing
    assert ledger.ack_many(["a", "d1"], "t") == ([-1, -1], [])
    assert rclient.hget("eventfwd:stats", "delivered") == "5"


def test_ack_many_reports_every_platform_whose_circuit_closed(
    settings: Settings, rclient: redis.Redis
) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a1", "down-a"), row("b1", "down-b"), row("a2", "down-a"), row("c")])
    ledger.claim_many(["a1", "b1", "a2", "c"], "t")
    for platform in ("down-a", "down-b"):
        rclient.hset(f"eventfwd:circuit:{platform}", "state", "open")

    held, closed = ledger.ack_many(["a1", "b1", "a2", "c", "a1"], "t")

    assert held == [1, 1, 1, 1, -1]  # the same id twice: the second finds it gone
    assert sorted(closed) == ["down-a", "down-b"]
    assert rclient.hget("eventfwd:stats", "circuit_closed") == "2"
    assert ledger.ack_many([], "t") == ([], [])


def test_ack_of_one_id_wraps_ack_many(settings: Settings, rclient: redis.Redis) -> None:
    ledger = make(settings)
    ledger.enqueue([row("a"), row("b")])
    ledger.claim("a", "t")
    ledger.claim("b", "other")
    rclient.hset("eventfwd:circuit:acme", "state", "open")
    assert ledger.ack("a", "t") == (1, True)
    assert ledger.ack("b", "t") == (0, False)  # the circuit is closed already
    assert ledger.ack("nope", "t") == (-1, False)
