"""Isolation: one platform hangs, another's live events keep flowing.

Our worker and beat (the first worker config, default 10 s client timeout, rate limit lifted so
only the in-flight cap bounds what the hanging platform may hold) serve two platforms. The sink
hangs every request for the platform `slow` (`{"fault": "hang", "platform": "slow"}`: it reads
the request and never answers), which has a backlog of events; once its first requests hang,
one producer process (`bench/producer.py`) enqueues live events for the healthy platform one by
one at 20/s. The figure is those events' `enqueue()` call → sink receipt, p50 and p99. Baseline
in the same run: the same healthy stream with no hanging platform. Runs alternate.
"""

from __future__ import annotations

from typing import Any

from bench.context import RunContext
from bench.events import events
from bench.harness import PLATFORM, Sink, flush, redis_and_sink, wait_for
from bench.measure import Figure, Target, percentile
from bench.producer import Producers
from bench.stack import OurStack
from eventfwd.devkit.localredis import LocalRedis

SLOW_PLATFORM = "slow"
RATE_PER_S = 20.0
P99_TARGET_MS = 2_000.0
SLOW_BACKLOG = 2_000
SINK_KEEPS = 10_000


def run_once(
    ctx: RunContext, server: LocalRedis, sink: Sink, *, hang: bool, n: int
) -> dict[str, Any]:
    flush(server)
    stack = OurStack(ctx.work, server, sink, ctx.default_config, beat=True)
    try:
        stack.start()
        stack.warm_up(events(50, f"iw{n}{int(hang)}"))
        slow_requests = 0
        if hang:
            sink.add_fault({"fault": "hang", "platform": SLOW_PLATFORM})
            stack.producer.enqueue_many(SLOW_PLATFORM, events(SLOW_BACKLOG, f"is{n}"))
            wait_for(lambda: _requests(sink, SLOW_PLATFORM) > 0, 30, "the slow platform's hangs")
        count = int(RATE_PER_S * ctx.scale(20, 12))
        produced = Producers(
            ctx.work, stack.env, PLATFORM, processes=1, count=count, seed=f"ih{n}{int(hang)}",
            rate_per_s=RATE_PER_S,
        ).start().collect(timeout_s=60 + count / RATE_PER_S)  # fmt: skip
        wait_for(lambda: _accepted(sink, PLATFORM) >= count, 60, "the healthy platform's events")
        received = {
            e["event"]["id"]: e["received_at_ms"]
            for e in sink.events(SINK_KEEPS)
            if e["platform_id"] == PLATFORM
        }
        latencies = [received[i] - t for i, t in produced.sent_ms.items() if i in received]
        ctx.check("isolation", f"lost, healthy platform (hang={hang})", 0, count - len(latencies))
        if hang:
            slow_requests = _requests(sink, SLOW_PLATFORM)
            held = stack.ledger_left(SLOW_PLATFORM)
            ctx.check("isolation", "the hanging platform's events held in the ledger",
                      SLOW_BACKLOG, held)  # fmt: skip
            ctx.check("isolation", "the hanging platform's events accepted", 0,
                      _accepted(sink, SLOW_PLATFORM))  # fmt: skip
        return {
            "events": count,
            "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "max_ms": round(max(latencies), 1),
            "slow_platform_requests": slow_requests,
        }
    finally:
        stack.close()


def _platform(sink: Sink, platform_id: str) -> dict[str, int]:
    counts: dict[str, int] = sink.stats().get("per_platform", {}).get(platform_id, {})
    return counts


def _requests(sink: Sink, platform_id: str) -> int:
    return int(_platform(sink, platform_id).get("requests", 0))


def _accepted(sink: Sink, platform_id: str) -> int:
    return int(_platform(sink, platform_id).get("accepted", 0))


def run(ctx: RunContext) -> None:
    hung: list[dict[str, Any]] = []
    alone: list[dict[str, Any]] = []
    with redis_and_sink(ctx.work, "isolation") as (server, sink):
        for n in range(ctx.runs):
            ctx.say(f"isolation: run {n + 1}/{ctx.runs}: live events at 20/s, one platform hangs")
            hung.append(run_once(ctx, server, sink, hang=True, n=n))
            ctx.say(f"isolation: run {n + 1}/{ctx.runs}: the same, no hanging platform")
            alone.append(run_once(ctx, server, sink, hang=False, n=n))
            ctx.say(
                f"isolation: p50/p99 {hung[-1]['p50_ms']}/{hung[-1]['p99_ms']} ms while "
                f"{SLOW_PLATFORM} hangs ({hung[-1]['slow_platform_requests']} requests held), "
                f"{alone[-1]['p50_ms']}/{alone[-1]['p99_ms']} ms alone"
            )
    ctx.details["isolation"] = {
        "rate_per_s": RATE_PER_S,
        "slow_backlog": SLOW_BACKLOG,
        "config": ctx.default_config.as_dict(),
        "while_hanging": hung,
        "alone": alone,
    }
    for q in ("p50", "p99"):
        ctx.figures.append(
            Figure("isolation", f"healthy platform enqueue→receipt {q}, another hangs", "ms",
                   [r[f"{q}_ms"] for r in hung], "the same stream, no hanging platform",
                   [r[f"{q}_ms"] for r in alone],
                   Target("<=", P99_TARGET_MS) if q == "p99" else None,
                   config=ctx.default_config.label, higher_is_better=False)
        )  # fmt: skip
