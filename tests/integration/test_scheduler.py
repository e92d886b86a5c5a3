"""The delivery scheduler end to end: real workers, a real redis-server and the sink.

What a worker sends is decided by the ledger's claim, not by what a Celery message carries:
events enqueued one at a time fill the same waves as a batch, a hanging platform holds at most
its in-flight cap, platforms are served in turn, live events go ahead of a replayed backlog,
and a worker killed mid-wave loses nothing. Every test counts the sink's requests.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
import redis

from eventfwd.core.ledger import Ledger
from eventfwd.devkit.samples import sample_events
from producers import EventProducer
from tests.support.ledger import backlog
from tests.support.stack import wait_for

pytestmark = pytest.mark.integration


def arrivals(sink: Any, platform: str | None = None) -> list[dict[str, Any]]:
    """Accepted events in the order the sink received them."""
    events = [e for e in sink.events() if platform is None or e["platform_id"] == platform]
    return sorted(events, key=lambda e: e["received_at_ms"])


def ids_at(sink: Any, platform: str | None = None) -> Counter[str]:
    return Counter(e["event"]["id"] for e in arrivals(sink, platform))


def most_within(times_ms: list[int], window_ms: int) -> int:
    """The most arrivals inside any `window_ms` (a measure of how many were in flight at once)."""
    times_ms = sorted(times_ms)
    best, start = 0, 0
    for end, t in enumerate(times_ms):
        while t - times_ms[start] > window_ms:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_events_enqueued_one_at_a_time_keep_many_posts_in_flight_in_one_process(
    make_stack, sink, rclient: redis.Redis
) -> None:  # type: ignore[no-untyped-def]
    sink.add_fault({"fault": "latency", "latency_ms": 400})
    stack = make_stack()
    stack.worker(concurrency=1, EVENTFWD_DELIVERY_THREADS="50", EVENTFWD_CONCURRENCY_INITIAL="50")
    producer = EventProducer(settings=stack.settings())
    wait_for(lambda: rclient.zcard("eventfwd:engines") == 1, 20, what="the engine")
    ids = [producer.enqueue("acme", event) for event in sample_events(60)]  # one per "request"
    wait_for(lambda: len(ids_at(sink)) == 60, 30, what="all 60 at the sink")
    times = [e["received_at_ms"] for e in arrivals(sink)]
    # one POST at a time would put one arrival in each 400 ms; the engine has dozens out at once
    assert most_within(times, 400) >= 30
    assert sink.stats()["requests"] == 60 and set(ids_at(sink)) == set(ids)


def test_a_hanging_platform_holds_only_its_cap_and_another_platforms_events_keep_flowing(
    make_stack, sink, rclient: redis.Redis
) -> None:  # type: ignore[no-untyped-def]
    sink.add_fault({"fault": "hang", "platform": "slow"})
    stack = make_stack()
    stack.worker(
        concurrency=2,
        EVENTFWD_DELIVERY_THREADS="10",  # 20 threads in all: without a cap, "slow" takes them all
        EVENTFWD_CONCURRENCY_INITIAL="4",
        EVENTFWD_HTTP_TIMEOUT_SECONDS="3",
        EVENTFWD_LEASE_SECONDS="10",
        EVENTFWD_CIRCUIT_FAILURE_THRESHOLD="1000",  # isolation by the cap alone, not the circuit
    )
    stack.beat()
    producer = EventProducer(settings=stack.settings())
    producer.enqueue_many("slow", sample_events(200))
    wait_for(lambda: sink.stats()["per_platform"].get("slow", {}).get("requests"), 20, what="slow")
    sent_at: dict[str, float] = {}
    for event in sample_events(40, seed="fast"):  # 20 events/s for two seconds
        sent_at[producer.enqueue("fast", event)] = time.time() * 1000
        time.sleep(0.05)
    wait_for(lambda: len(ids_at(sink, "fast")) == 40, 20, what="every fast event")
    delays = [e["received_at_ms"] - sent_at[e["event"]["id"]] for e in arrivals(sink, "fast")]
    assert max(delays) <= 2000, sorted(delays)[-5:]
    slow = sink.stats()["per_platform"]["slow"]["requests"]
    assert slow <= 4 * 3, slow  # its cap, and the cap again after each timeout (3 s apart)


def test_a_hang_outage_is_stopped_after_the_cap_and_the_threshold(
    make_stack, sink, rclient: redis.Redis
) -> None:  # type: ignore[no-untyped-def]
    threshold, cap, probe_s, hang_s = 5, 10, 2, 6
    sink.add_fault({"fault": "hang", "seconds": hang_s})
    stack = make_stack()
    stack.worker(
        EVENTFWD_HTTP_TIMEOUT_SECONDS="1",
        EVENTFWD_RATE_LIMIT_PER_SECOND="30",
        EVENTFWD_CONCURRENCY_INITIAL=str(cap),
        EVENTFWD_CIRCUIT_FAILURE_THRESHOLD=str(threshold),
        EVENTFWD_CIRCUIT_PROBE_SECONDS=str(probe_s),
    )
    stack.beat()
    producer = EventProducer(settings=stack.settings())
    ids: list[str] = []
    started = time.monotonic()
    while time.monotonic() - started < hang_s:  # live traffic through the whole outage
        ids += producer.enqueue_many("acme", sample_events(10, seed=f"h{len(ids)}"))
        time.sleep(0.5)
    during = sink.stats()["requests"]
    probes = hang_s // probe_s + 1
    assert during <= threshold + 1 + probes + cap, during
    assert rclient.hget("eventfwd:circuit:acme", "state") == "open"
    rclient.hset("eventfwd:circuit:acme", "next_probe_ms", 0)  # probe now: the sink is back
    wait_for(lambda: set(ids_at(sink)) == set(ids), 60, what="every event after the outage")
    assert sum(ids_at(sink).values()) == len(ids)  # hung requests were not accepted: no dupes


def test_a_platform_with_a_large_backlog_does_not_starve_one_with_a_small_one(
    make_stack, sink, rclient: redis.Redis
) -> None:  # type: ignore[no-untyped-def]
    sink.add_fault({"fault": "latency", "latency_ms": 20})
    stack = make_stack()
    producer = EventProducer(settings=stack.settings())
    big = producer.enqueue_many("big", sample_events(600, seed="big"))
    small = producer.enqueue_many("small", sample_events(10, seed="small"))
    stack.worker(concurrency=1, EVENTFWD_DELIVERY_THREADS="4", EVENTFWD_CONCURRENCY_INITIAL="4")
    wait_for(lambda: len(ids_at(sink)) == 610, 60, what="both backlogs")
    order = [e["event"]["id"] for e in arrivals(sink)]
    last_small = max(order.index(i) for i in small)
    # served in turn: the small platform's ten are among the first arrivals, not after 600
    assert last_small < 40, last_small
    assert sink.stats()["requests"] == 610 and set(order) == set(big) | set(small)


def test_live_events_go_ahead_of_a_replay_of_ten_thousand_dead_letters(
    make_stack, sink, rclient: redis.Redis
) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack()
    settings = stack.settings(EVENTFWD_RATE_LIMIT_PER_SECOND="100")
    ledger = Ledger(redis.Redis.from_url(settings.redis_url), settings)
    producer = EventProducer(settings=settings)
    dead = producer.enqueue_many("acme", sample_events(10_000, seed="dead"))
    pipe = rclient.pipeline(transaction=False)
    now_ms = int(time.time() * 1000)
    for event_id in dead:  # make them dead letters as a failed delivery would
        pipe.hset(f"eventfwd:ev:{event_id}", mapping={"state": "dead", "reason": "rejected"})
        pipe.zrem("eventfwd:ready:acme", event_id)
        pipe.zadd("eventfwd:dead", {event_id: now_ms})
    pipe.zrem("eventfwd:active", "acme")
    pipe.execute()
    assert ledger.replay(dead, max_replays=0) == (10_000, 0)
    stack.worker(EVENTFWD_RATE_LIMIT_PER_SECOND="100")
    wait_for(lambda: len(ids_at(sink)) >= 50, 20, what="the replay draining")
    live = producer.enqueue("acme", sample_events(1, seed="live")[0])
    sent_ms = time.time() * 1000
    wait_for(lambda: live in ids_at(sink), 5, what="the live event")
    (arrival,) = [e for e in arrivals(sink) if e["event"]["id"] == live]
    assert arrival["received_at_ms"] - sent_ms < 1000
    assert backlog(rclient, "acme") > 9_000  # the replay is still draining at its rate


def test_a_worker_killed_mid_wave_loses_nothing(make_stack, sink, rclient: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    sink.add_fault({"fault": "latency", "latency_ms": 1500})
    stack = make_stack()
    producer = EventProducer(settings=stack.settings())
    ids = producer.enqueue_many("acme", sample_events(100))
    worker = stack.worker(
        concurrency=1, EVENTFWD_DELIVERY_THREADS="30", EVENTFWD_CONCURRENCY_INITIAL="30"
    )
    wait_for(lambda: sink.stats()["requests"] >= 20, 20, what="a wave in flight")
    in_flight = int(rclient.zcard("eventfwd:inflight:acme"))
    worker.kill()  # SIGKILL: its POSTs and leases are abandoned
    assert in_flight > 0
    sink.clear_faults()
    stack.worker(name="w2")
    stack.beat()  # reaps the dead worker's leases once they expire
    wait_for(lambda: set(ids_at(sink)) == set(ids), 60, what="every event")
    wait_for(lambda: backlog(rclient, "acme") == 0, 20, what="an empty ledger")
    resent = sum(ids_at(sink).values()) - len(ids)
    # only what the killed worker had in flight can have been sent twice (Moloco de-duplicates)
    assert resent <= 30, resent
