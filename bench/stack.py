"""Our worker (and beat) or the baseline worker against one Redis and one sink, and the
measurement every delivery figure shares: how fast a backlog reaches the sink.

Timing comes from the sink's own receipt times (`received_at_ms` of the first and the last
event), so polling only decides when to look, not what is measured. CPU seconds of each process
(worker main, worker pool, sink, redis-server) are read from /proc over the same window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench import baseline_celery
from bench.harness import (
    API_KEY,
    PLATFORM,
    BenchError,
    Proc,
    Sink,
    WorkerConfig,
    base_env,
    celery_beat,
    celery_worker,
    cpu_s,
    eventfwd_env,
    redis_db_url,
    wait_for,
)
from eventfwd.core.keys import Keys
from eventfwd.core.settings import Settings
from eventfwd.devkit.localredis import LocalRedis
from producers import EventProducer

POLL_S = 0.05
BASELINE_DB = 1
# The baseline worker: Celery's default pool with one process per core here.
BASELINE_CONFIG = WorkerConfig(pool="prefork", concurrency=2)
ENQUEUE_CHUNK = 1_000


@dataclass
class Drain:
    """What one backlog run measured."""

    events: int
    seconds: float
    per_s: float
    duplicates: int
    cpu_us_per_event: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "per_s": round(self.per_s, 1),
            "duplicates": self.duplicates,
            "cpu_us_per_event": self.cpu_us_per_event,
        }


class OurStack:
    """eventfwd's worker (optionally beat) configured by `config`, plus a producer."""

    def __init__(
        self,
        work: Path,
        server: LocalRedis,
        sink: Sink,
        config: WorkerConfig,
        *,
        beat: bool = False,
        **extra_env: str,
    ) -> None:
        self.work = work
        self.server = server
        self.sink = sink
        self.config = config
        self.env = eventfwd_env(server.url, sink.url, config, **extra_env)
        self.settings = Settings.from_mapping(self.env)
        self.producer = EventProducer(settings=self.settings)
        self.keys = Keys(self.settings.key_prefix)
        self.with_beat = beat
        self.worker: Proc | None = None
        self.beat: Proc | None = None

    def start(self) -> OurStack:
        self.worker = celery_worker(self.work, "worker", self.env, self.config, "bench").start()
        if self.with_beat:
            self.beat = celery_beat(self.work, self.env).start()
        return self

    def stop(self) -> None:
        for proc in (self.beat, self.worker):
            if proc is not None:
                proc.stop()
        self.worker = self.beat = None

    def close(self) -> None:
        self.stop()
        self.producer.close()

    def enqueue(self, batch: list[dict[str, Any]]) -> list[str]:
        ids: list[str] = []
        for start in range(0, len(batch), ENQUEUE_CHUNK):
            ids += self.producer.enqueue_many(PLATFORM, batch[start : start + ENQUEUE_CHUNK])
        return ids

    def ledger_left(self, platform_id: str = PLATFORM) -> int:
        """Events of `platform_id` still in the ledger (ready, scheduled, in flight) plus the
        dead letters: 0 once all delivered."""
        client = redis.Redis(port=self.server.port)
        try:
            k = self.keys
            sets = (k.ready(platform_id), k.sched(platform_id), k.inflight(platform_id), k.dead)
            return sum(int(client.zcard(key)) for key in sets)
        finally:
            client.close()

    def settled_left(self, timeout_s: float = 15.0, platform_id: str = PLATFORM) -> int:
        """`ledger_left()` once the worker has acked what the sink received (the sink stamps an
        event on arrival; its answer, and so the ack, can come `latency_ms` later)."""
        deadline = time.monotonic() + timeout_s
        while (left := self.ledger_left(platform_id)) and time.monotonic() < deadline:
            time.sleep(POLL_S)
        return left

    def warm_up(self, batch: list[dict[str, Any]], timeout_s: float = 60) -> None:
        """Deliver `batch` end to end (the worker is up and connected), then reset the sink."""
        self.sink.reset()
        self.enqueue(batch)
        wait_for(
            lambda: self._alive() and self.sink.stats()["unique_ids"] >= len(batch),
            timeout_s,
            "the warm-up events to reach the sink",
        )
        # and to be acked: a delivery recorded later would close a circuit opened meanwhile
        wait_for(lambda: self.ledger_left() == 0, timeout_s, "the warm-up events to be acked")
        self.sink.reset()

    def _alive(self) -> bool:
        if self.worker is not None and not self.worker.alive():
            raise BenchError(f"the worker exited: {self.worker.log_tail()}")
        return True


class BaselineStack:
    """The plain Celery worker (`bench.baseline_celery`) on its own broker database."""

    def __init__(
        self, work: Path, server: LocalRedis, sink: Sink, config: WorkerConfig = BASELINE_CONFIG
    ) -> None:
        self.work = work
        self.sink = sink
        self.broker_url = redis_db_url(server, BASELINE_DB)
        env = baseline_celery.worker_env(self.broker_url, sink.url, API_KEY, PLATFORM)
        self.env = base_env(**env)
        self.config = config
        self.delay = baseline_celery.publisher(self.broker_url).delay
        self.worker: Proc | None = None

    def start(self) -> BaselineStack:
        app = "bench.baseline_celery"
        self.worker = celery_worker(self.work, app, self.env, self.config, "plain").start()
        return self

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.worker = None

    def enqueue(self, batch: list[dict[str, Any]]) -> None:
        for event in batch:
            self.delay(event)


def drain(
    sink: Sink,
    worker_pid: int,
    extra_pids: dict[str, int],
    expected: int,
    timeout_s: float,
    alive: Any = None,
) -> Drain:
    """Wait until `expected` unique ids reached the sink; time it by the sink's receipt times."""
    deadline = time.monotonic() + timeout_s
    first_ms: float | None = None
    cpu_before: dict[str, float] = {}
    accepted_at_start = accepted_at_cpu = 0
    while True:
        stats = sink.stats()
        if first_ms is None and stats["accepted"] > 0:
            cpu_before = _cpu(worker_pid, extra_pids)
            recent = sink.events(10_000)
            accepted_at_start = accepted_at_cpu = stats["accepted"]
            if len(recent) >= stats["accepted"]:
                first_ms = min(e["received_at_ms"] for e in recent)
                accepted_at_start = 0
            else:
                first_ms = time.time() * 1000
        if stats["unique_ids"] >= expected:
            break
        if alive is not None and not alive():
            raise BenchError("a worker exited during the run")
        if time.monotonic() > deadline:
            raise BenchError(
                f"timed out after {timeout_s:.0f}s: {stats['unique_ids']} of {expected} "
                f"events reached the sink"
            )
        time.sleep(POLL_S)
    cpu_after = _cpu(worker_pid, extra_pids)
    last_ms = sink.events(1)[-1]["received_at_ms"]
    assert first_ms is not None
    seconds = max((last_ms - first_ms) / 1000, 1e-3)
    measured = max(expected - accepted_at_start - 1, 1)
    cpu_events = max(expected - accepted_at_cpu, 1)
    return Drain(
        events=expected,
        seconds=seconds,
        per_s=measured / seconds,
        duplicates=int(stats["accepted"]) - int(stats["unique_ids"]),
        cpu_us_per_event={
            name: round((cpu_after[name] - cpu_before[name]) / cpu_events * 1e6, 1)
            for name in cpu_after
        },
    )


def redis_cpu_s(server: LocalRedis) -> float:
    """redis-server's own CPU seconds so far (`INFO cpu`: used_cpu_sys + used_cpu_user)."""
    client = redis.Redis(port=server.port)
    try:
        info = client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    finally:
        client.close()


def _cpu(worker_pid: int, extra_pids: dict[str, int]) -> dict[str, float]:
    main = cpu_s(worker_pid, tree=False)
    out = {"worker_main": main, "worker_pool": cpu_s(worker_pid) - main}
    for name, pid in extra_pids.items():
        out[name] = cpu_s(pid)
    return out
