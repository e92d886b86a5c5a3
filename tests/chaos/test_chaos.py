"""Chaos: thousands of events through two workers while everything that can break, breaks.

The sink answers a random mix of 500/503/429/hangs/resets; workers are SIGKILLed and restarted;
redis-server is SIGKILLed and restarted from its AOF; an outage long enough to open the
circuit. At the end every id is delivered or a dead letter with a reason: lost = 0.
Bounded: 5,000 events, a fixed timeline, and a hard deadline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from eventfwd.devkit.samples import sample_events
from producers import EventProducer
from tests.support.stack import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

EVENTS = 5_000
THRESHOLD = 5
WORKERS, CONCURRENCY, THREADS = 2, 2, 20
MIX = {
    "fault": "mix",
    "seed": 11,
    "mix": [
        {"fault": 500, "weight": 0.04},
        {"fault": 503, "weight": 0.04},
        {"fault": 429, "retry_after_s": 1, "weight": 0.003},
        {"fault": "hang", "hang_s": 2, "weight": 0.005},
        {"fault": "reset", "weight": 0.02},
    ],
}
ENV = {
    "EVENTFWD_RATE_LIMIT_PER_SECOND": "300",
    "EVENTFWD_HTTP_TIMEOUT_SECONDS": "1",
    "EVENTFWD_LEASE_SECONDS": "4",
    "EVENTFWD_RETRY_BASE_SECONDS": "0.2",
    "EVENTFWD_RETRY_MAX_SECONDS": "2",
    "EVENTFWD_CIRCUIT_FAILURE_THRESHOLD": str(THRESHOLD),
    "EVENTFWD_CIRCUIT_PROBE_SECONDS": "2",
    "EVENTFWD_POISON_THRESHOLD": "5",
    "EVENTFWD_DELIVERY_THREADS": str(THREADS),
}


def test_chaos_loses_nothing_and_duplicates_only_in_kill_windows(  # type: ignore[no-untyped-def]
    make_stack, sink, redis_server, rclient: redis.Redis, tmp_path: Path
) -> None:
    stack = make_stack()
    producer = EventProducer(settings=stack.settings(**ENV))
    ids: list[str] = []
    for start in range(0, EVENTS, 500):
        ids += producer.enqueue_many("acme", sample_events(500, seed=f"chaos-{start}"))
    sink.add_fault(MIX)
    workers = [stack.worker(name=f"w{i}", concurrency=CONCURRENCY, **ENV) for i in range(WORKERS)]
    stack.beat(**ENV)
    figures: dict[str, Any] = {"events": EVENTS, "kills": 0, "redis_restarts": 0}

    def kill_worker(i: int) -> None:
        workers[i].kill()
        figures["kills"] += 1
        workers[i].start()

    def restart_redis() -> None:
        redis_server.kill()
        time.sleep(0.5)
        redis_server.start()
        figures["redis_restarts"] += 1

    def outage() -> None:
        sink.clear_faults()
        figures["outage_requests_before"] = sink.stats()["requests"]
        figures["probes_before"] = int(rclient.hget("eventfwd:stats", "probes") or 0)
        sink.add_fault({"fault": 503, "seconds": 6, "message": "outage"})
        sink.add_fault(MIX)

    def outage_over() -> None:
        figures["outage_requests"] = sink.stats()["requests"] - figures["outage_requests_before"]
        probes = int(rclient.hget("eventfwd:stats", "probes") or 0)
        figures["outage_probes"] = probes - figures.pop("probes_before")

    timeline: list[tuple[float, Callable[[], None]]] = [
        (2, lambda: kill_worker(0)),
        (5, lambda: kill_worker(1)),
        (8, restart_redis),
        (12, outage),
        (18.2, outage_over),
        (21, lambda: kill_worker(0)),
        (24, lambda: kill_worker(1)),
    ]
    started = time.monotonic()
    for at, action in timeline:
        time.sleep(max(0.0, started + at - time.monotonic()))
        action()
    opened = int(rclient.hget("eventfwd:stats", "circuit_opened") or 0)

    def settled() -> bool:
        backlog = sum(
            rclient.zcard(k)
            for pattern in ("eventfwd:ready:*", "eventfwd:sched:*", "eventfwd:inflight:*")
            for k in rclient.scan_iter(pattern)
        )
        return backlog == 0

    wait_for(settled, 300, interval_s=1, what="every event delivered or dead")
    figures["seconds"] = round(time.monotonic() - started, 1)
    counts: dict[str, int] = {}
    for e in sink.events():
        counts[e["event"]["id"]] = counts.get(e["event"]["id"], 0) + 1
    dead = {
        i: rclient.hget(f"eventfwd:ev:{i}", "reason")
        for i in rclient.zrange("eventfwd:dead", 0, -1)
    }
    lost = [i for i in ids if i not in counts and not dead.get(i)]
    figures.update(
        delivered=len(counts),
        dead=len(dead),
        dead_reasons=sorted(set(dead.values())),
        lost=len(lost),
        duplicates=sum(n - 1 for n in counts.values()),
        requests=sink.stats()["requests"],
        circuit_opened=opened,
    )
    print("CHAOS " + json.dumps(figures))
    (tmp_path / "chaos.json").write_text(json.dumps(figures))

    assert lost == [], f"{len(lost)} lost"
    assert all(dead.values()), "every dead letter has a reason"
    assert opened >= 1, "the outage opened the circuit"
    # a resend needs a kill between Moloco's 200 and the ack: at most one per pool process per
    # kill (and per Redis restart, when the ack could not be written)
    # each pool process sends up to EVENTFWD_DELIVERY_THREADS events of a message side by side
    per_worker = CONCURRENCY * THREADS
    in_flight = WORKERS * per_worker
    assert figures["duplicates"] <= figures["kills"] * per_worker + in_flight, figures
    # during the outage: the failures that open the circuit, what was in flight, then probes
    assert figures["outage_requests"] <= THRESHOLD + 1 + in_flight + figures["outage_probes"], (
        figures
    )
