"""End-to-end latency: `enqueue()` call → the sink's receipt, at a steady 200 events/s.

Our worker and beat run with the default pump and pool settings (the first worker config; the
platform rate limit is lifted, since the default of 30/s would throttle 200/s by design). The
bench process paces `enqueue()` calls on a fixed schedule and notes the wall-clock time of each
call; the sink notes when each event arrived (same machine, same clock). Baseline in the same
run: the plain Celery task, `delay()` → receipt, at the same pace.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench.context import RunContext
from bench.events import events, wire_events
from bench.harness import PLATFORM, Sink, flush, redis_and_sink, wait_for
from bench.measure import Figure, Target, median, percentile
from bench.stack import BaselineStack, OurStack
from eventfwd.devkit.localredis import LocalRedis

RATE_PER_S = 200
P99_TARGET_MS = 250.0
SINK_KEEPS = 10_000


def paced(
    batch: list[dict[str, Any]], send: Callable[[dict[str, Any]], object]
) -> dict[str, float]:
    """Send at `RATE_PER_S` on a fixed schedule; return {event id: wall-clock ms of the call}."""
    return paced_at(batch, send, RATE_PER_S)[0]


def paced_at(
    batch: list[dict[str, Any]], send: Callable[[dict[str, Any]], object], rate_per_s: float
) -> tuple[dict[str, float], float]:
    """Send at `rate_per_s` on a fixed schedule: ({event id: wall-clock ms of the call}, the
    seconds it took)."""
    sent: dict[str, float] = {}
    start = time.perf_counter() + 0.2
    for i, event in enumerate(batch):
        delay = start + i / rate_per_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent[event["id"]] = time.time() * 1000
        send(event)
    return sent, time.perf_counter() - start


def _latencies(sink: Sink, sent: dict[str, float], timeout_s: float) -> list[float]:
    wait_for(lambda: sink.stats()["unique_ids"] >= len(sent), timeout_s, "every event to arrive")
    received = {e["event"]["id"]: e["received_at_ms"] for e in sink.events(SINK_KEEPS)}
    return [received[i] - t for i, t in sent.items() if i in received]


def _summary(latencies: list[float], count: int, elapsed_s: float) -> dict[str, float]:
    return {
        "events": count,
        "offered_per_s": round(count / elapsed_s, 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p90_ms": round(percentile(latencies, 90), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
    }


def _ours(ctx: RunContext, server: LocalRedis, sink: Sink, count: int, n: int) -> dict[str, float]:
    flush(server)
    stack = OurStack(ctx.work, server, sink, ctx.default_config, beat=True)
    try:
        stack.start()
        stack.warm_up(events(50, f"lw{n}"))
        batch = events(count, f"lat{n}")
        started = time.perf_counter()
        sent = paced(batch, lambda e: stack.producer.enqueue(PLATFORM, e))
        elapsed = time.perf_counter() - started
        latencies = _latencies(sink, sent, 60)
        ctx.check("latency", "lost, ours", 0, count - sink.stats()["unique_ids"])
        return _summary(latencies, count, elapsed)
    finally:
        stack.close()


def _plain(ctx: RunContext, server: LocalRedis, sink: Sink, count: int, n: int) -> dict[str, float]:
    flush(server)
    stack = BaselineStack(ctx.work, server, sink)
    try:
        stack.start()
        sink.reset()
        stack.enqueue(wire_events(50, f"pw{n}"))
        wait_for(lambda: sink.stats()["unique_ids"] >= 50, 60, "the warm-up events")
        sink.reset()
        batch = wire_events(count, f"plat{n}")
        started = time.perf_counter()
        sent = paced(batch, stack.delay)
        elapsed = time.perf_counter() - started
        latencies = _latencies(sink, sent, 60)
        ctx.check("latency", "lost, plain Celery task", 0, count - sink.stats()["unique_ids"])
        return _summary(latencies, count, elapsed)
    finally:
        stack.stop()


def run(ctx: RunContext) -> None:
    count = min(SINK_KEEPS, RATE_PER_S * ctx.scale(20, 6))
    ours: list[dict[str, float]] = []
    plain: list[dict[str, float]] = []
    with redis_and_sink(ctx.work, "latency") as (server, sink):
        for n in range(ctx.runs):
            ctx.say(f"latency: run {n + 1}/{ctx.runs}: {count} events at {RATE_PER_S}/s")
            ours.append(_ours(ctx, server, sink, count, n))
            plain.append(_plain(ctx, server, sink, count, n))
            ctx.say(
                f"latency: ours p50 {ours[-1]['p50_ms']} ms p99 {ours[-1]['p99_ms']} ms; "
                f"plain p50 {plain[-1]['p50_ms']} ms p99 {plain[-1]['p99_ms']} ms"
            )
    ctx.details["latency"] = {
        "rate_per_s": RATE_PER_S,
        "config": ctx.default_config.as_dict(),
        "ours": ours,
        "plain_celery": plain,
    }
    label = ctx.default_config.label
    for q in ("p50", "p99"):
        ctx.figures.append(
            Figure("latency", f"end-to-end {q} at {RATE_PER_S} events/s", "ms",
                   [r[f"{q}_ms"] for r in ours], "plain Celery task",
                   [r[f"{q}_ms"] for r in plain],
                   Target("<=", P99_TARGET_MS) if q == "p99" else None,
                   config=label, higher_is_better=False)
        )  # fmt: skip
    ctx.say(f"latency: median p99 {median([r['p99_ms'] for r in ours])} ms")
