"""Break real things mid-run (worker SIGKILL, redis-server SIGKILL) and count: lost = 0."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from eventfwd.core.settings import Settings
from eventfwd.devkit.samples import sample_events
from producers import EventProducer
from tests.support.ledger import backlog
from tests.support.stack import wait_for

pytestmark = pytest.mark.integration


def delivered_counts(sink: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in sink.events():
        counts[e["event"]["id"]] = counts.get(e["event"]["id"], 0) + 1
    return counts


def test_a_worker_killed_mid_delivery_loses_nothing(make_stack, sink, rclient: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    sink.add_fault({"fault": "latency", "latency_ms": 40})
    stack = make_stack()
    first = stack.worker(name="w1")
    stack.beat()
    ids = EventProducer(settings=stack.settings()).enqueue_many("acme", sample_events(150))
    wait_for(lambda: len(sink.events()) >= 20, 30, what="delivery under way")
    first.kill()  # SIGKILL the worker and its pool children mid-request
    kill_at = len(sink.events())
    stack.worker(name="w2")
    wait_for(lambda: set(delivered_counts(sink)) >= set(ids), 60, what="every id at the sink")
    counts = delivered_counts(sink)
    duplicates = sum(n - 1 for n in counts.values())
    # only a kill between Moloco's 200 and the ack can resend: at most what was in flight, one
    # per delivery thread of each pool process (2 x EVENTFWD_DELIVERY_THREADS)
    assert duplicates <= 2 * Settings().delivery_threads, f"{duplicates} after a kill at {kill_at}"
    wait_for(lambda: backlog(rclient, "acme") == 0, 10, what="empty schedule")
    assert rclient.zcard("eventfwd:dead") == 0


def test_redis_killed_and_restarted_from_its_aof_loses_nothing(
    make_stack, sink, redis_server, rclient: redis.Redis
) -> None:  # type: ignore[no-untyped-def]
    sink.add_fault({"fault": "latency", "latency_ms": 20})
    stack = make_stack()
    stack.worker()
    stack.beat()
    producer = EventProducer(settings=stack.settings())
    ids = producer.enqueue_many("acme", sample_events(100))
    wait_for(lambda: len(sink.events()) >= 10, 30, what="delivery under way")
    redis_server.kill()
    time.sleep(1)
    redis_server.start()  # same port, state from the AOF
    ids += producer.enqueue_many("acme", sample_events(20, seed="after"))
    wait_for(lambda: set(delivered_counts(sink)) >= set(ids), 90, what="every id at the sink")
    assert rclient.zcard("eventfwd:dead") == 0


def test_a_producer_killed_right_after_enqueue_returned_loses_nothing(make_stack, sink) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    stack = make_stack()
    stack.worker()
    script = (
        "import os, signal, sys\n"
        "from producers import EventProducer\n"
        "from eventfwd.devkit.samples import sample_events\n"
        "ids = EventProducer().enqueue_many('acme', sample_events(20, seed='dying'))\n"
        "print(' '.join(ids), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], env=stack.env(), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -9
    ids = proc.stdout.split()
    assert len(ids) == 20
    wait_for(lambda: set(delivered_counts(sink)) >= set(ids), 30, what="every id at the sink")
