"""Web latency: `enqueue()` call → sink arrival at 500 events/s enqueued one by one, 50 ms sink.

Our worker and beat (the first worker config, rate limit lifted) against a sink that answers in
50 ms; four producer processes (`bench/producer.py`) call `enqueue()` one event at a time on
interleaved fixed schedules, 500 events/s together, and note each call's wall-clock time; the
sink notes each arrival (same machine, same clock). The sink stamps an event when the request
arrives and answers 50 ms later, so the figure is the time until Moloco has the event, and the
target "p99 at most 100 ms above the sink's own 50 ms" (enqueue → answer <= 150 ms) is held
here as arrival <= 100 ms.

Baseline: the latency scenario's plain Celery task at the same pace, if it can hold it; its
capacity against the 50 ms sink is measured first (a short backlog), and when it is under the
pace its latency would only measure a growing queue, so the figure says so instead.
"""

from __future__ import annotations

from typing import Any

from bench import delivery
from bench.context import RunContext
from bench.events import events, wire_events
from bench.harness import PLATFORM, Sink, flush, redis_and_sink, wait_for
from bench.latency import paced_at
from bench.measure import Figure, Target, median, percentile
from bench.producer import Producers
from bench.stack import BaselineStack, OurStack
from eventfwd.devkit.localredis import LocalRedis

RATE_PER_S = 500.0
SINK_LATENCY_MS = 50
# enqueue -> the sink's answer within 100 ms over its own 50 ms: arrival within 100 ms.
P99_TARGET_MS = 100.0
PRODUCERS = 4
PLAIN_CAPACITY_EVENTS = 150
SINK_KEEPS = 10_000


def _summary(latencies: list[float], count: int, offered_per_s: float) -> dict[str, float]:
    return {
        "events": count,
        "offered_per_s": round(offered_per_s, 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p90_ms": round(percentile(latencies, 90), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
    }


def _received(sink: Sink, count: int) -> dict[str, float]:
    wait_for(lambda: sink.stats()["unique_ids"] >= count, 60, "every event to arrive")
    return {e["event"]["id"]: e["received_at_ms"] for e in sink.events(SINK_KEEPS)}


def run_ours(ctx: RunContext, server: LocalRedis, sink: Sink, count: int, n: int) -> dict[str, Any]:
    flush(server)
    stack = OurStack(ctx.work, server, sink, ctx.default_config, beat=True)
    try:
        stack.start()
        stack.warm_up(events(50, f"ww{n}"))
        produced = Producers(
            ctx.work, stack.env, PLATFORM, processes=PRODUCERS, count=count, seed=f"wl{n}",
            rate_per_s=RATE_PER_S,
        ).start().collect(timeout_s=60 + count / RATE_PER_S)  # fmt: skip
        received = _received(sink, produced.count)
        latencies = [received[i] - t for i, t in produced.sent_ms.items() if i in received]
        ctx.check("web_latency", "lost, ours", 0, produced.count - sink.stats()["unique_ids"])
        return _summary(latencies, produced.count, produced.per_s)
    finally:
        stack.close()


def run_plain(
    ctx: RunContext, server: LocalRedis, sink: Sink, count: int, n: int
) -> dict[str, Any]:
    """The plain Celery task, `delay()` → receipt, paced at `RATE_PER_S` from this process."""
    flush(server)
    stack = BaselineStack(ctx.work, server, sink)
    try:
        stack.start()
        sink.reset()
        stack.enqueue(wire_events(20, f"wpw{n}"))
        wait_for(lambda: sink.stats()["unique_ids"] >= 20, 60, "the warm-up events")
        sink.reset()
        sent, elapsed = paced_at(wire_events(count, f"wpl{n}"), stack.delay, RATE_PER_S)
        received = _received(sink, count)
        latencies = [received[i] - t for i, t in sent.items() if i in received]
        ctx.check("web_latency", "lost, plain Celery task", 0, count - sink.stats()["unique_ids"])
        return _summary(latencies, count, count / elapsed)
    finally:
        stack.stop()


def run(ctx: RunContext) -> None:
    count = int(min(SINK_KEEPS, RATE_PER_S * ctx.scale(16, 6)))
    ours: list[dict[str, Any]] = []
    plain: list[dict[str, Any]] = []
    with redis_and_sink(ctx.work, "web-latency", latency_ms=SINK_LATENCY_MS) as (server, sink):
        ctx.say(f"web_latency: can the plain Celery task hold {RATE_PER_S:.0f}/s at 50 ms?")
        capacity = delivery.run_baseline(
            ctx, server, sink, PLAIN_CAPACITY_EVENTS, 20, scenario="web_latency"
        ).per_s
        holds = capacity >= RATE_PER_S
        ctx.say(f"web_latency: plain Celery task delivers {capacity:,.0f}/s at 50 ms")
        for n in range(ctx.runs):
            ctx.say(f"web_latency: run {n + 1}/{ctx.runs}: {count} events at {RATE_PER_S:.0f}/s")
            ours.append(run_ours(ctx, server, sink, count, n))
            if holds:
                plain.append(run_plain(ctx, server, sink, count, n))
            ctx.say(
                f"web_latency: ours p50 {ours[-1]['p50_ms']} ms p99 {ours[-1]['p99_ms']} ms "
                f"(offered {ours[-1]['offered_per_s']}/s)"
            )
    ctx.details["web_latency"] = {
        "rate_per_s": RATE_PER_S,
        "sink_latency_ms": SINK_LATENCY_MS,
        "producers": PRODUCERS,
        "config": ctx.default_config.as_dict(),
        "plain_celery_capacity_per_s": round(capacity, 1),
        "ours": ours,
        "plain_celery": plain,
    }
    label = ctx.default_config.label
    baseline = "plain Celery task" if holds else ""
    for q in ("p50", "p99"):
        name = f"enqueue()→arrival {q}, {RATE_PER_S:.0f} events/s one by one, 50 ms sink"
        ctx.figures.append(
            Figure("web_latency", name, "ms", [r[f"{q}_ms"] for r in ours], baseline,
                   [r[f"{q}_ms"] for r in plain],
                   Target("<=", P99_TARGET_MS) if q == "p99" else None,
                   config=label, higher_is_better=False)
        )  # fmt: skip
    ctx.figures.append(
        Figure("web_latency", f"plain Celery task capacity, {SINK_LATENCY_MS} ms sink "
               f"(under {RATE_PER_S:.0f}/s: no latency baseline)" if not holds else
               f"plain Celery task capacity, {SINK_LATENCY_MS} ms sink", "events/s", [capacity],
               "the offered pace", [RATE_PER_S])
    )  # fmt: skip
    ctx.say(f"web_latency: median p99 {median([r['p99_ms'] for r in ours])} ms")
