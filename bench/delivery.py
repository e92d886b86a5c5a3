"""Delivery: events/s from a full backlog to all delivered, one worker host, loopback sink.

For each sink latency (0 ms and 50 ms) and each worker configuration: the backlog is enqueued
while no worker runs, then the worker starts and the clock runs from the sink's first receipt to
its last. A calibration run (not counted) sizes the backlog so a run lasts about `target_s`.
Baselines in the same run: the plain per-event Celery task (prefork x2, default settings) at
the same sink latency, and at 0 ms the raw limit, `requests.Session` tight loops in two
processes. Runs of ours and of the baseline alternate. Beat is not started: the pump has
nothing to do for a backlog that enqueue made ready (the worker's engines claim it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from bench.baseline_http import raw_post_rate
from bench.context import RunContext
from bench.events import events, wire_events
from bench.harness import Sink, WorkerConfig, at_each_sink_latency, flush
from bench.measure import Figure, Target, median
from bench.stack import BASELINE_CONFIG, BaselineStack, Drain, OurStack, drain
from eventfwd.devkit.localredis import LocalRedis

CALIBRATION_EVENTS = 300
MIN_EVENTS, MAX_EVENTS = 300, 60_000
RAW_PROCESSES = 2


def _timeout_s(count: int, per_s: float) -> float:
    return 60 + 5 * count / max(per_s, 1.0)


def run_ours(
    ctx: RunContext, server: LocalRedis, sink: Sink, config: WorkerConfig, count: int, guess: float
) -> Drain:
    flush(server)
    sink.reset()
    stack = OurStack(ctx.work, server, sink, config)
    try:
        ids = stack.enqueue(events(count, f"d{len(ctx.checks)}"))
        stack.start()
        assert stack.worker is not None
        result = drain(
            sink,
            stack.worker.pid,
            {"sink": sink.pid, "redis": _redis_pid(server)},
            len(ids),
            _timeout_s(count, guess),
            stack.worker.alive,
        )
        stack.stop()
        ctx.check(
            "delivery", f"lost, ours [{config.label}]", 0, len(ids) - sink.stats()["unique_ids"]
        )
        ctx.check("delivery", f"left in ledger, ours [{config.label}]", 0, stack.ledger_left())
        return result
    finally:
        stack.close()


def run_baseline(
    ctx: RunContext,
    server: LocalRedis,
    sink: Sink,
    count: int,
    guess: float,
    *,
    scenario: str = "delivery",
) -> Drain:
    flush(server)
    sink.reset()
    stack = BaselineStack(ctx.work, server, sink)
    try:
        stack.enqueue(wire_events(count, f"b{len(ctx.checks)}"))
        stack.start()
        assert stack.worker is not None
        result = drain(
            sink,
            stack.worker.pid,
            {"sink": sink.pid, "redis": _redis_pid(server)},
            count,
            _timeout_s(count, guess),
            stack.worker.alive,
        )
        ctx.check(scenario, "lost, plain Celery task", 0, count - sink.stats()["unique_ids"])
        return result
    finally:
        stack.stop()


def _redis_pid(server: LocalRedis) -> int:
    assert server.proc is not None
    return server.proc.pid


def _size(ctx: RunContext, measure: Callable[[int, float], Drain], label: str) -> tuple[int, float]:
    """A calibration run (not counted): events a run needs to last about `target_s`."""
    target_s = ctx.scale(10, 4)
    calibration = measure(CALIBRATION_EVENTS, 20.0)
    count = int(min(MAX_EVENTS, max(MIN_EVENTS, calibration.per_s * target_s)))
    ctx.say(f"delivery: {label}: calibrated {calibration.per_s:,.0f}/s -> {count} events a run")
    return count, calibration.per_s


def run(ctx: RunContext) -> None:
    ctx.details["delivery"] = at_each_sink_latency(
        ctx.work, "delivery", lambda server, sink: _at_latency(ctx, server, sink)
    )


def _at_latency(ctx: RunContext, server: LocalRedis, sink: Sink) -> dict[str, Any]:
    latency = f"{sink.latency_ms} ms sink"
    measures: dict[str, Callable[[int, float], Drain]] = {
        "plain": lambda n, guess: run_baseline(ctx, server, sink, n, guess)
    }
    labels = {"plain": "plain Celery task"}
    for config in ctx.configs:
        measures[config.label] = functools.partial(run_ours, ctx, server, sink, config)
        labels[config.label] = f"ours [{config.label}]"
    sizes = {k: _size(ctx, m, f"{labels[k]}, {latency}") for k, m in measures.items()}
    drains: dict[str, list[Drain]] = {k: [] for k in measures}
    raw: list[dict[str, Any]] = []
    posts = ctx.scale(20_000, 6_000)
    for n in range(ctx.runs):  # alternate, so load from elsewhere falls on all alike
        for key, measure in measures.items():
            ctx.say(f"delivery: {latency}: run {n + 1}/{ctx.runs}: {labels[key]}")
            drains[key].append(measure(*sizes[key]))
        if sink.latency_ms == 0:
            sink.reset()
            raw.append(raw_post_rate(ctx.work, sink.url, total=posts, processes=RAW_PROCESSES))
            ctx.check("delivery", "lost, raw requests loop", 0, posts - sink.stats()["unique_ids"])
    plain_rates = [d.per_s for d in drains["plain"]]
    raw_rates = [r["posts_per_s"] for r in raw]
    out: dict[str, Any] = {
        "plain_celery": {
            "config": BASELINE_CONFIG.as_dict(),
            "runs": [d.as_dict() for d in drains["plain"]],
        },
        "raw_requests": raw,
        "ours": {},
    }
    for config in ctx.configs:
        rates = [d.per_s for d in drains[config.label]]
        out["ours"][config.label] = {
            "config": config.as_dict(),
            "runs": [d.as_dict() for d in drains[config.label]],
        }
        ctx.say(
            f"delivery: {latency}: ours [{config.label}] {median(rates):,.0f}/s, "
            f"plain {median(plain_rates):,.0f}/s"
            + (f", raw {median(raw_rates):,.0f}/s" if raw_rates else "")
        )
        name = f"delivery, {latency}"
        if sink.latency_ms == 0:
            ctx.figures.append(
                Figure("delivery", f"{name} vs plain Celery task", "events/s", rates,
                       "plain Celery task (prefork x2)", plain_rates, Target(">=", 4, ratio=True),
                       config=config.label)
            )  # fmt: skip
            ctx.figures.append(
                Figure("delivery", f"{name} vs raw requests limit", "events/s", rates,
                       f"requests.Session loop x{RAW_PROCESSES} processes", raw_rates,
                       Target(">=", 0.6, ratio=True), config=config.label)
            )  # fmt: skip
        else:
            ctx.figures.append(
                Figure("delivery", name, "events/s", rates, "plain Celery task (prefork x2)",
                       plain_rates, Target(">=", 1000), config=config.label)
            )  # fmt: skip
    return out
