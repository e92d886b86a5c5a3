"""One focused test per failure mode; each breaks something real and counts requests."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
import redis

from eventfwd.core.ledger import Ledger
from eventfwd.devkit.samples import sample_events
from producers import EventProducer
from tests.support.procs import children
from tests.support.stack import wait_for

pytestmark = pytest.mark.integration
P = "acme"


def accepted(sink: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in sink.events():
        counts[e["event"]["id"]] = counts.get(e["event"]["id"], 0) + 1
    return counts


def test_a_duplicated_celery_message_sends_once(make_stack, sink, rclient: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack()
    settings = stack.settings()
    (event_id,) = EventProducer(settings=settings).enqueue_many(P, sample_events(1))
    Ledger(rclient, settings).pump()  # no engine alive: the pump publishes a wake-up
    message = rclient.lindex("eventfwd", 0)
    assert message is not None
    rclient.lpush("eventfwd", message, message)  # the broker hands it out three times
    stack.worker()
    wait_for(lambda: accepted(sink) == {event_id: 1}, 20, what="one delivery")
    wait_for(lambda: rclient.llen("eventfwd") == 0, 10, what="all three messages consumed")
    time.sleep(0.5)
    assert sink.stats()["requests"] == 1


def test_a_message_that_reappears_after_delivery_is_not_sent_again(
    make_stack, sink, rclient: redis.Redis
) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack()
    settings = stack.settings()
    (event_id,) = EventProducer(settings=settings).enqueue_many(P, sample_events(1))
    Ledger(rclient, settings).pump()  # no engine alive: the pump publishes a wake-up
    message = rclient.lindex("eventfwd", 0)
    assert message is not None
    stack.worker()
    wait_for(lambda: accepted(sink) == {event_id: 1}, 20, what="the delivery")
    rclient.lpush("eventfwd", message)  # e.g. the broker's visibility timeout restored it
    wait_for(lambda: rclient.llen("eventfwd") == 0, 10, what="the stale message consumed")
    time.sleep(0.5)
    assert sink.stats()["requests"] == 1
    assert rclient.exists(f"eventfwd:done:{event_id}")


def test_a_pool_child_killed_mid_request_is_recovered_after_its_lease(
    make_stack, sink, rclient: redis.Redis
) -> None:  # type: ignore[no-untyped-def]
    sink.add_fault({"fault": "hang", "count": 1})
    stack = make_stack()
    worker = stack.worker(concurrency=1)
    stack.beat()
    (event_id,) = EventProducer(settings=stack.settings()).enqueue_many(P, sample_events(1))
    wait_for(lambda: sink.stats()["requests"] == 1, 20, what="the hanging request")
    for child in children(worker.pid):
        os.kill(child, signal.SIGKILL)
    started = time.monotonic()
    wait_for(lambda: accepted(sink) == {event_id: 1}, 30, what="delivery after the lease expired")
    assert time.monotonic() - started >= 3  # lease is 5 s in tests; the reaper waits for it
    assert sink.stats()["requests"] == 2
    wait_for(lambda: rclient.hget("eventfwd:stats", "delivered") == "1", 10, what="the ack")


def test_an_event_that_keeps_killing_its_worker_becomes_a_poison_dead_letter(
    make_stack, sink, rclient: redis.Redis
) -> None:  # type: ignore[no-untyped-def]
    sink.add_fault({"fault": "hang"})  # every request hangs; we kill whoever holds the event
    env = {
        "EVENTFWD_POISON_THRESHOLD": "2",
        "EVENTFWD_LEASE_SECONDS": "3",
        "EVENTFWD_HTTP_TIMEOUT_SECONDS": "1",
    }
    stack = make_stack()
    worker = stack.worker(concurrency=1, **env)
    stack.beat(**env)
    (event_id,) = EventProducer(settings=stack.settings(**env)).enqueue_many(P, sample_events(1))
    for n in (1, 2):
        wait_for(lambda n=n: sink.stats()["requests"] >= n, 30, what=f"request {n}")
        for child in children(worker.pid):
            os.kill(child, signal.SIGKILL)
    dead = wait_for(lambda: rclient.hget(f"eventfwd:ev:{event_id}", "reason"), 30, what="poison")
    assert dead == "poison"
    assert sink.stats()["requests"] == 2


def test_retries_wait_while_beat_is_stopped_and_resume_when_it_returns(
    make_stack, sink, rclient: redis.Redis
) -> None:  # type: ignore[no-untyped-def]
    sink.add_fault({"fault": 503, "count": 1})
    stack = make_stack()
    stack.worker()
    (event_id,) = EventProducer(settings=stack.settings()).enqueue_many(P, sample_events(1))
    wait_for(
        lambda: rclient.hget(f"eventfwd:ev:{event_id}", "state") == "scheduled", 20, what="a retry"
    )
    time.sleep(1.5)
    assert accepted(sink) == {}  # nothing pumps the retry
    stack.beat()
    wait_for(lambda: accepted(sink) == {event_id: 1}, 20, what="delivery once beat is back")
    assert sink.stats()["requests"] == 2


def test_an_event_older_than_the_maximum_age_is_dead_lettered_unsent(
    make_stack, sink, rclient: redis.Redis
) -> None:  # type: ignore[no-untyped-def]
    env = {"EVENTFWD_MAX_EVENT_AGE_SECONDS": "60"}
    stack = make_stack()
    stack.worker(**env)
    event = sample_events(1)[0] | {"timestamp": int(time.time() * 1000) - 120_000}
    event_id = EventProducer(settings=stack.settings()).enqueue(P, event)
    reason = wait_for(lambda: rclient.hget(f"eventfwd:ev:{event_id}", "reason"), 20, what="expiry")
    assert reason == "expired"
    assert sink.stats()["requests"] == 0


def test_an_outage_opens_the_circuit_probes_and_drains_at_the_rate_limit(
    make_stack, sink, rclient: redis.Redis
) -> None:  # type: ignore[no-untyped-def]
    threshold, concurrency = 3, 2
    env = {
        "EVENTFWD_CIRCUIT_FAILURE_THRESHOLD": str(threshold),
        "EVENTFWD_CIRCUIT_PROBE_SECONDS": "1.5",
        "EVENTFWD_RATE_LIMIT_PER_SECOND": "20",
        "EVENTFWD_MAX_ATTEMPTS": "100",
        # one event per message, so "in flight" is one per pool process (the chaos test covers
        # batches, where a message's events are sent side by side)
        "EVENTFWD_BATCH_SIZE": "1",
    }
    sink.add_fault({"fault": 503, "seconds": 4})
    stack = make_stack()
    stack.worker(concurrency=concurrency, **env)
    stack.beat(**env)
    ids = EventProducer(settings=stack.settings(**env)).enqueue_many(P, sample_events(40))
    wait_for(
        lambda: rclient.hget(f"eventfwd:circuit:{P}", "state") == "open", 20, what="open circuit"
    )
    opened = time.monotonic()
    wait_for(lambda: set(accepted(sink)) == set(ids), 60, what="the backlog drained")
    drained = time.monotonic()
    stats = sink.stats()
    failures = stats["by_status"].get("503", 0)
    probes = int(rclient.hget("eventfwd:stats", "circuit_opened") or 0)
    # before opening: threshold + 1 failures, plus what was already in flight; then one probe per
    # probe interval (about 4 s / 1.5 s) until one succeeds
    assert failures <= threshold + 1 + concurrency + 4, stats
    assert probes >= 1
    assert rclient.hget(f"eventfwd:circuit:{P}", "state") == "closed"
    # 40 events at 20/s (plus one second of burst) cannot drain much faster than 1.5 s
    assert drained - opened >= 1.0
    assert sum(accepted(sink).values()) == len(ids)
    assert rclient.zcard("eventfwd:dead") == 0


def test_warm_shutdown_finishes_the_request_in_flight(
    make_stack, sink, rclient: redis.Redis
) -> None:  # type: ignore[no-untyped-def]
    sink.add_fault({"fault": "latency", "latency_ms": 1500, "count": 1})
    stack = make_stack()
    worker = stack.worker(concurrency=1)
    (event_id,) = EventProducer(settings=stack.settings()).enqueue_many(P, sample_events(1))
    wait_for(lambda: sink.stats()["requests"] == 1, 20, what="the slow request")
    worker.stop()  # SIGTERM: Celery's warm shutdown waits for the task
    assert accepted(sink) == {event_id: 1}
    assert not rclient.exists(f"eventfwd:ev:{event_id}")
    assert rclient.hget("eventfwd:stats", "delivered") == "1"
    assert sink.stats()["requests"] == 1


@pytest.mark.parametrize("fault", ["malformed", "truncated"])
def test_a_200_with_a_broken_body_counts_as_delivered_and_is_not_resent(  # type: ignore[no-untyped-def]
    make_stack, sink, rclient: redis.Redis, fault: str
) -> None:
    sink.add_fault({"fault": fault, "count": 1})
    stack = make_stack()
    stack.worker()
    stack.beat()
    (event_id,) = EventProducer(settings=stack.settings()).enqueue_many(P, sample_events(1))
    wait_for(lambda: rclient.exists(f"eventfwd:done:{event_id}"), 20, what="the delivery")
    time.sleep(1)
    assert accepted(sink) == {event_id: 1}
    assert sink.stats()["requests"] == 1


def test_a_redis_blip_between_moloco_and_the_ack_does_not_resend(  # type: ignore[no-untyped-def]
    make_stack, sink, redis_server, rclient: redis.Redis
) -> None:
    sink.add_fault({"fault": "latency", "latency_ms": 1500, "count": 1})
    stack = make_stack()
    stack.worker(concurrency=1)
    stack.beat()
    (event_id,) = EventProducer(settings=stack.settings()).enqueue_many(P, sample_events(1))
    wait_for(lambda: sink.stats()["requests"] == 1, 20, what="the slow request")
    redis_server.kill()  # the worker gets Moloco's 200 while Redis is away
    time.sleep(1.5)
    redis_server.start()
    wait_for(lambda: rclient.exists(f"eventfwd:done:{event_id}"), 20, what="the ack")
    time.sleep(6)  # longer than the lease: nothing is resent
    assert sink.stats()["requests"] == 1
