"""Enqueue: `enqueue()` latency and rate, `enqueue_many()` rate; no worker runs meanwhile.

Baselines, measured in the same run against the same redis-server: plain Celery
`post.delay(event_dict)` (broker database 1), and raw redis-py LPUSH of a 400-byte payload one
by one and pipelined. Ours and the baselines alternate run by run, so that load from other
work on the machine falls on both alike.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import redis

from bench import baseline_celery
from bench.context import RunContext
from bench.events import events, wire_events
from bench.harness import PLATFORM, UNLIMITED_RATE_PER_S, flush, redis_db_url, start_redis
from bench.measure import Figure, Target, median, percentile
from eventfwd.core.keys import Keys
from eventfwd.core.settings import Settings
from producers import EventProducer

WARMUP = 200
LPUSH_PAYLOAD = b"x" * 400
PIPELINE_CHUNK = 1_000


def _timed_calls(items: list[Any], call: Callable[[Any], object]) -> dict[str, float]:
    """Call `call` on each item; answer calls/s and per-call p50/p99 in ms."""
    latencies_ns = []
    started = time.perf_counter()
    for item in items:
        t0 = time.perf_counter_ns()
        call(item)
        latencies_ns.append(time.perf_counter_ns() - t0)
    elapsed = time.perf_counter() - started
    return {
        "per_s": len(items) / elapsed,
        "p50_ms": percentile(latencies_ns, 50) / 1e6,
        "p99_ms": percentile(latencies_ns, 99) / 1e6,
        "max_ms": max(latencies_ns) / 1e6,
    }


def _rate(count: int, action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return count / (time.perf_counter() - started)


def run(ctx: RunContext) -> None:
    single = ctx.scale(5_000, 1_500)
    many = ctx.scale(50_000, 20_000)
    lpush_one = ctx.scale(10_000, 3_000)
    lpush_piped = ctx.scale(200_000, 50_000)
    server = start_redis(ctx.work, "redis-enqueue")
    settings = Settings(redis_url=server.url, rate_limit_per_s=UNLIMITED_RATE_PER_S)
    producer = EventProducer(settings=settings)
    delay = baseline_celery.publisher(redis_db_url(server, 1)).delay
    raw = redis.Redis(port=server.port)
    runs: dict[str, list[dict[str, float]]] = {
        k: [] for k in ("enqueue", "delay", "enqueue_many", "lpush", "lpush_pipelined")
    }
    try:
        for n in range(ctx.runs):
            ctx.say(f"enqueue: run {n + 1}/{ctx.runs}")
            flush(server)
            for event in events(WARMUP, f"warm{n}"):
                producer.enqueue(PLATFORM, event)
            runs["enqueue"].append(
                _timed_calls(events(single, f"one{n}"), lambda e: producer.enqueue(PLATFORM, e))
            )
            ctx.check("enqueue", "enqueue() ids in the ledger", WARMUP + single, _held(raw))
            flush(server)
            for event in wire_events(WARMUP, f"dwarm{n}"):
                delay(event)
            runs["delay"].append(_timed_calls(wire_events(single, f"delay{n}"), delay))
            flush(server)
            batch = events(many, f"many{n}")
            chunks = [batch[i : i + ctx.many_batch] for i in range(0, many, ctx.many_batch)]
            runs["enqueue_many"].append(
                {"per_s": _rate(many, functools.partial(_enqueue_chunks, producer, chunks))}
            )
            ctx.check("enqueue", "enqueue_many() ids in the ledger", many, _held(raw))
            flush(server)
            runs["lpush"].append(
                _timed_calls(list(range(lpush_one)), lambda _: raw.lpush("q", LPUSH_PAYLOAD))
            )
            flush(server)
            runs["lpush_pipelined"].append(
                {"per_s": _rate(lpush_piped, lambda: _pipelined_lpush(raw, lpush_piped))}
            )
            flush(server)
    finally:
        producer.close()
        raw.close()
        server.stop()
    ctx.details["enqueue"] = {
        "events": {
            "enqueue": single,
            "enqueue_many": many,
            "enqueue_many_batch": ctx.many_batch,
            "lpush": lpush_one,
            "lpush_pipelined": lpush_piped,
            "lpush_payload_bytes": len(LPUSH_PAYLOAD),
        },
        "runs": runs,
    }
    _figures(ctx, runs)


def _enqueue_chunks(producer: EventProducer, chunks: list[list[dict[str, Any]]]) -> None:
    for chunk in chunks:
        producer.enqueue_many(PLATFORM, chunk)


def _held(client: redis.Redis) -> int:
    """Events the ledger holds for the bench platform: with no worker running, each is ready
    (or, for a retry, scheduled): exactly one entry in one of the two sets."""
    keys = Keys(Settings().key_prefix)
    return int(client.zcard(keys.ready(PLATFORM))) + int(client.zcard(keys.sched(PLATFORM)))


def _pipelined_lpush(client: redis.Redis, count: int) -> None:
    for start in range(0, count, PIPELINE_CHUNK):
        pipe = client.pipeline(transaction=False)
        for _ in range(min(PIPELINE_CHUNK, count - start)):
            pipe.lpush("q", LPUSH_PAYLOAD)
        pipe.execute()


def _figures(ctx: RunContext, runs: dict[str, list[dict[str, float]]]) -> None:
    def col(name: str, key: str) -> list[float]:
        return [r[key] for r in runs[name]]

    delay = "plain Celery delay()"
    add = ctx.figures.append
    add(
        Figure("enqueue", "enqueue() p50 latency", "ms", col("enqueue", "p50_ms"), delay,
               col("delay", "p50_ms"), higher_is_better=False)
    )  # fmt: skip
    add(
        Figure("enqueue", "enqueue() p99 latency", "ms", col("enqueue", "p99_ms"), delay,
               col("delay", "p99_ms"), Target("<=", 1.0), higher_is_better=False)
    )  # fmt: skip
    add(
        Figure("enqueue", "enqueue() throughput", "events/s", col("enqueue", "per_s"), delay,
               col("delay", "per_s"), Target(">=", 1.5, ratio=True))
    )  # fmt: skip
    add(
        Figure("enqueue", "enqueue() throughput vs raw LPUSH", "events/s",
               col("enqueue", "per_s"), "redis-py LPUSH one by one", col("lpush", "per_s"))
    )  # fmt: skip
    add(
        Figure("enqueue", f"enqueue_many() throughput ({ctx.many_batch}/call)", "events/s",
               col("enqueue_many", "per_s"), delay, col("delay", "per_s"),
               Target(">=", 20, ratio=True))
    )  # fmt: skip
    add(
        Figure("enqueue", f"enqueue_many() vs pipelined LPUSH ({ctx.many_batch}/call)",
               "events/s", col("enqueue_many", "per_s"), "redis-py LPUSH pipelined",
               col("lpush_pipelined", "per_s"))
    )  # fmt: skip
    ctx.say(
        f"enqueue: enqueue() {median(col('enqueue', 'per_s')):,.0f}/s, "
        f"delay() {median(col('delay', 'per_s')):,.0f}/s, "
        f"enqueue_many {median(col('enqueue_many', 'per_s')):,.0f}/s"
    )
