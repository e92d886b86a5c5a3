"""Several processes sharing one spool directory: writers, drainers, and a fork after creation."""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis

from eventfwd.core.ledger import Ledger
from eventfwd.core.settings import Settings
from eventfwd.devkit.samples import sample_events
from producers import EventProducer
from producers.drain import drain_spool
from producers.spool import Spool
from tests.conftest import example_events
from tests.support.ready import ready_ids
from tests.support.redis_server import RedisServer, free_port
from tests.support.stack import wait_for

pytestmark = pytest.mark.integration
FORK = multiprocessing.get_context("fork")
WRITERS, EVENTS_PER_WRITER = 3, 80


def _write(dead_url: str, spool_dir: str, seed: str, barrier: Any, out: Any) -> None:
    producer = EventProducer(settings=Settings(redis_url=dead_url, spool_dir=spool_dir))
    events = sample_events(EVENTS_PER_WRITER, seed=seed)
    barrier.wait(10)
    out.put([producer.enqueue("acme", e) for e in events])  # one spool file per request


def _drain(settings: Settings, spool_dir: str, barrier: Any, out: Any) -> None:
    spool = Spool(spool_dir, max_bytes=1 << 30)
    ledger = Ledger(redis.Redis.from_url(settings.redis_url), settings)
    barrier.wait(10)
    result = drain_spool(spool, ledger)
    out.put((result.files, result.accepted, result.duplicates + result.already_delivered))


def _run_all(targets: list[tuple[Any, tuple[Any, ...]]], out: Any) -> list[Any]:
    procs = [FORK.Process(target=fn, args=args) for fn, args in targets]
    for proc in procs:
        proc.start()
    try:
        results = [out.get(timeout=30) for _ in procs]
    finally:
        for proc in procs:
            proc.join(10)
    assert [p.exitcode for p in procs] == [0] * len(procs)
    return results


def test_two_processes_draining_one_spool_lose_nothing_and_send_nothing_twice(
    make_stack: Any, sink: Any, rclient: redis.Redis, tmp_path: Path
) -> None:
    stack = make_stack()
    settings = stack.settings()
    spool_dir = str(tmp_path / "spool")
    dead_url = f"redis://127.0.0.1:{free_port()}/0"

    # Several web workers spool at once into one directory: nothing corrupt, nothing lost.
    out = FORK.Queue()
    barrier = FORK.Barrier(WRITERS)
    written = _run_all(
        [(_write, (dead_url, spool_dir, f"w{n}", barrier, out)) for n in range(WRITERS)], out
    )
    ids = [i for batch in written for i in batch]
    total = WRITERS * EVENTS_PER_WRITER
    assert len(set(ids)) == total
    status = Spool(spool_dir, max_bytes=1 << 30).status()
    assert (status.ready_files, status.ready_events, status.corrupt_files) == (total, total, 0)

    # Two drainers race over the same files: each batch is claimed by exactly one.
    barrier = FORK.Barrier(2)
    drained = _run_all([(_drain, (settings, spool_dir, barrier, out)) for _ in range(2)], out)
    assert sum(files for files, _, _ in drained) == total
    assert sum(accepted for _, accepted, _ in drained) == total
    assert sum(dup for _, _, dup in drained) == 0, "a batch was drained twice"
    assert all(files > 0 for files, _, _ in drained), "the two drains did not overlap"
    assert len(ready_ids(rclient)) == total

    stack.worker()
    wait_for(lambda: len(sink.events(limit=total + 10)) >= total, 60, what="every event delivered")
    time.sleep(0.5)  # a duplicate would arrive now
    counts = Counter(e["event"]["id"] for e in sink.events(limit=total + 10))
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1
    assert sink.stats()["requests"] == total


def _child_spools_then_drains(
    producer: EventProducer, events: list[dict[str, Any]], out: Any
) -> None:
    out.put([producer.enqueue("acme", e) for e in events])  # spooled: Redis is down
    status = producer.spool_status
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the child's own drainer, once Redis is back
        s = status()
        if s is not None and s.ready_files == 0 and s.claimed_files == 0:
            os._exit(0)
        time.sleep(0.05)
    os._exit(1)


def test_forking_after_the_producer_was_created_is_safe(
    redis_server: RedisServer, redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    producer = EventProducer(settings=Settings(redis_url=redis_url, spool_dir=str(tmp_path)))
    events = example_events()
    producer.enqueue("acme", events[0])  # the parent's connection is open
    redis_server.stop()
    try:
        producer.enqueue("acme", events[1])  # the parent's drainer thread is running now
        out = FORK.Queue()
        child = FORK.Process(target=_child_spools_then_drains, args=(producer, events[2:], out))
        child.start()
        try:
            child_ids = out.get(timeout=10)
        except queue.Empty:
            child.kill()
            raise
        producer.close()  # only the child's drainer is left to drain
    finally:
        redis_server.start()
    child.join(30)
    assert child.exitcode == 0, "the child's drainer did not empty the spool"
    ids = [events[0]["id"], events[1]["id"], *child_ids]
    assert child_ids == [e["id"] for e in events[2:]]
    wait_for(lambda: all(rclient.exists(f"eventfwd:ev:{i}") for i in ids), 5, what="the ledger")
    assert len(ready_ids(rclient)) == len(events)
