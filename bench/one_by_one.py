"""One by one: events enqueued one at a time from web handlers are delivered as fast as a batch.

Four producer processes (`bench/producer.py`) each call `EventProducer.enqueue()` in a loop, as
web handlers would; the comparison sends the same number of events with `enqueue_many()` (500 a
call) from as many processes. One worker host at the default settings (the first worker config,
rate limit lifted), at 0 ms and 50 ms sink latency. The worker starts and delivers a warm-up
first; then the producers start together, and the clock runs from the sink's first receipt to
its last, so the one-by-one figure is measured while the producers are still running (it is
bounded by how fast they enqueue as much as by delivery; both share this machine's two cores).

At 0 ms the one-by-one figure is also set against the delivery scenario's baselines, measured
again in this run: the plain per-event Celery task draining a backlog, and the raw `requests`
loops. Redis's own CPU (`INFO cpu`, used_cpu_sys + used_cpu_user) is read around each run, from
the producers' start to the last delivery, and divided by the events: the Redis cost per event
of each path, for capacity planning.
"""

from __future__ import annotations

from typing import Any

from bench import delivery
from bench.baseline_http import raw_post_rate
from bench.context import RunContext
from bench.events import events
from bench.harness import PLATFORM, Sink, at_each_sink_latency, flush
from bench.measure import Figure, Target, median
from bench.producer import Producers
from bench.stack import OurStack, drain, redis_cpu_s
from eventfwd.devkit.localredis import LocalRedis

PRODUCERS = 4
RATIO_TARGET = 0.9
RATE_TARGET_PER_S = 1_500
REDIS_CPU_RATIO_TARGET = 1.5
PLAIN_EVENTS = 600


def run_ours(
    ctx: RunContext, server: LocalRedis, sink: Sink, count: int, *, many: int, seed: str
) -> dict[str, Any]:
    """Worker up and warm, then `PRODUCERS` processes enqueue `count` events together."""
    path = "batched" if many else "one by one"
    flush(server)
    stack = OurStack(ctx.work, server, sink, ctx.default_config)
    try:
        stack.start()
        assert stack.worker is not None
        stack.warm_up(events(50, f"{seed}w"))
        cpu_before = redis_cpu_s(server)
        producers = Producers(
            ctx.work, stack.env, PLATFORM, processes=PRODUCERS, count=count, seed=seed, many=many
        ).start()
        expected = count // PRODUCERS * PRODUCERS
        try:
            result = drain(
                sink,
                stack.worker.pid,
                {"sink": sink.pid},
                expected,
                60 + expected / 100,
                lambda: (
                    stack.worker is not None and stack.worker.alive() and not producers.failed()
                ),
            )
            produced = producers.collect()
        finally:
            producers.kill()
        redis_us = (redis_cpu_s(server) - cpu_before) / produced.count * 1e6
        lost = produced.count - sink.stats()["unique_ids"]
        ctx.check("one_by_one", f"lost, {path}, {sink.latency_ms} ms sink", 0, lost)
        ctx.check("one_by_one", f"left in ledger, {path}", 0, stack.settled_left())
        return {
            **result.as_dict(),
            "enqueued_per_s": round(produced.per_s, 1),
            "redis_cpu_us_per_event": round(redis_us, 1),
        }
    finally:
        stack.close()


def run(ctx: RunContext) -> None:
    out: dict[str, Any] = {"producers": PRODUCERS, "config": ctx.default_config.as_dict()}
    out |= at_each_sink_latency(
        ctx.work, "one-by-one", lambda server, sink: _at_latency(ctx, server, sink)
    )
    ctx.details["one_by_one"] = out


def _at_latency(ctx: RunContext, server: LocalRedis, sink: Sink) -> dict[str, Any]:
    latency = f"{sink.latency_ms} ms sink"
    count = ctx.scale(12_000, 5_000)
    one: list[dict[str, Any]] = []
    many: list[dict[str, Any]] = []
    plain: list[float] = []
    raw: list[float] = []
    for n in range(ctx.runs):  # alternate, so load from elsewhere falls on all alike
        ctx.say(f"one_by_one: {latency}: run {n + 1}/{ctx.runs}: {count} events, one by one")
        one.append(run_ours(ctx, server, sink, count, many=0, seed=f"o{sink.latency_ms}{n}"))
        ctx.say(f"one_by_one: {latency}: run {n + 1}/{ctx.runs}: {count} events, batched")
        many.append(
            run_ours(ctx, server, sink, count, many=ctx.many_batch, seed=f"m{sink.latency_ms}{n}")
        )
        if sink.latency_ms == 0:
            ctx.say(f"one_by_one: {latency}: run {n + 1}/{ctx.runs}: baselines")
            plain.append(
                delivery.run_baseline(
                    ctx, server, sink, PLAIN_EVENTS, 200, scenario="one_by_one"
                ).per_s
            )
            sink.reset()
            posts = ctx.scale(12_000, 5_000)
            raw.append(raw_post_rate(ctx.work, sink.url, total=posts)["posts_per_s"])
            ctx.check(
                "one_by_one", "lost, raw requests loop", 0, posts - sink.stats()["unique_ids"]
            )
        ctx.say(
            f"one_by_one: {latency}: one by one {one[-1]['per_s']:,.0f}/s "
            f"(enqueued {one[-1]['enqueued_per_s']:,.0f}/s), batched {many[-1]['per_s']:,.0f}/s; "
            f"Redis CPU {one[-1]['redis_cpu_us_per_event']} vs "
            f"{many[-1]['redis_cpu_us_per_event']} us/event"
        )
    _figures(ctx, sink.latency_ms, one, many, plain, raw)
    return {"one_by_one": one, "batched": many, "plain_celery_per_s": plain, "raw_per_s": raw}


def _figures(
    ctx: RunContext,
    latency_ms: int,
    one: list[dict[str, Any]],
    many: list[dict[str, Any]],
    plain: list[float],
    raw: list[float],
) -> None:
    label = ctx.default_config.label
    one_rates = [r["per_s"] for r in one]
    many_rates = [r["per_s"] for r in many]
    batched = f"same events by enqueue_many() ({ctx.many_batch}/call)"
    name = f"one-by-one enqueue() x{PRODUCERS} processes, {latency_ms} ms sink"
    ctx.figures.append(
        Figure("one_by_one", f"{name}, vs batched", "events/s", one_rates, batched, many_rates,
               Target(">=", RATIO_TARGET, ratio=True), config=label,
               note="producers running while measured")
    )  # fmt: skip
    # When delivered/s is close to this, the producers were the limit, not delivery.
    ctx.figures.append(
        Figure("one_by_one", f"{name}, enqueue() rate while measured", "events/s",
               [r["enqueued_per_s"] for r in one], "enqueue_many() rate",
               [r["enqueued_per_s"] for r in many], config=label)
    )  # fmt: skip
    if latency_ms == 0:
        ctx.figures.append(
            Figure("one_by_one", f"{name}, vs plain Celery task", "events/s", one_rates,
                   "plain Celery task (prefork x2)", plain, Target(">=", 4, ratio=True),
                   config=label)
        )  # fmt: skip
        ctx.figures.append(
            Figure("one_by_one", f"{name}, vs raw requests limit", "events/s", one_rates,
                   "requests.Session loop x2 processes", raw, Target(">=", 0.6, ratio=True),
                   config=label)
        )  # fmt: skip
    else:
        ctx.figures.append(
            Figure("one_by_one", name, "events/s", one_rates, batched, many_rates,
                   Target(">=", RATE_TARGET_PER_S), config=label)
        )  # fmt: skip
    ctx.figures.append(
        Figure("one_by_one", f"Redis CPU per delivered event, one by one, {latency_ms} ms sink",
               "µs", [r["redis_cpu_us_per_event"] for r in one], batched,
               [r["redis_cpu_us_per_event"] for r in many],
               Target("<=", REDIS_CPU_RATIO_TARGET, ratio=True), config=label,
               higher_is_better=False)
    )  # fmt: skip
    ctx.say(
        f"one_by_one: {latency_ms} ms: median one by one {median(one_rates):,.0f}/s, "
        f"batched {median(many_rates):,.0f}/s"
    )
