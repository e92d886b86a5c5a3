"""Outage: events parked by an open circuit, then drained at the platform's rate limit.

Each run has two parts, each with a fresh worker and beat (default pump settings, the first
worker config, the platform's rate limit set to `drain_rate_per_s`) and the circuit opened as a
fleet leaves it after an outage (state open, next probe far away):

1. parked: `outage_events` (100,000) go in with `enqueue_many()`; Redis `used_memory` and the
   worker's RSS (main process and pool children, sampled while parked) are read around it, and
   every event must still be held, none sent, none published.
2. drained: a backlog of `drain_rate_per_s` x 30 s is parked, the circuit is closed as
   `eventfwd circuit reset` does, and the drain is timed and sampled in 5 s windows: the steady
   rate must reach the configured one (within 10%) and no window may flood above it. Every
   event must reach the sink.

Draining the full 100,000 would take minutes on a small box at a rate the worker can hold, so
the drain of 100,000 is projected from the measured steady rate (and printed as such).
"""

from __future__ import annotations

import time
from typing import Any

import redis

from bench.context import RunContext
from bench.events import events, mean_body_bytes
from bench.harness import (
    PLATFORM,
    BenchError,
    Sink,
    flush,
    redis_and_sink,
    rss_kb,
    wait_for,
)
from bench.measure import Figure, Target, median
from bench.stack import OurStack
from eventfwd.devkit.localredis import LocalRedis

SAMPLE_EVERY_S = 0.25
RATE_WINDOW_S = 5.0
RATE_TOLERANCE = 0.10
RSS_FLAT_MB = 10.0
PROBE_FAR_AWAY_MS = 10 * 24 * 3600 * 1000
PARKED_HOLD_S = 3.0
LAYOUT_SAMPLE = 200
# Seconds a drain run should last at the configured rate.
DRAIN_S, DRAIN_S_QUICK = 30, 12


def _used_memory(client: redis.Redis) -> int:
    info: dict[str, Any] = client.info("memory")
    return int(info["used_memory"])


def _open_circuit(client: redis.Redis, stack: OurStack) -> None:
    """The platform's circuit as a fleet leaves it after an outage: open, no probe soon."""
    now_ms = int(time.time() * 1000)
    client.hset(
        stack.keys.circuit(PLATFORM),
        mapping={"state": "open", "reason": "bench", "opened_ms": now_ms,
                 "next_probe_ms": now_ms + PROBE_FAR_AWAY_MS},
    )  # fmt: skip


def _close_circuit(client: redis.Redis, stack: OurStack) -> None:
    """What `eventfwd circuit reset` does."""
    client.hset(
        stack.keys.circuit(PLATFORM),
        mapping={"state": "closed", "failures": 0, "closed_ms": int(time.time() * 1000)},
    )


def _stack(ctx: RunContext, server: LocalRedis, sink: Sink) -> OurStack:
    flush(server)
    rate = f"{ctx.drain_rate_per_s:g}"
    stack = OurStack(
        ctx.work, server, sink, ctx.default_config, beat=True, EVENTFWD_RATE_LIMIT_PER_SECOND=rate
    )
    return stack.start()


def parked(ctx: RunContext, server: LocalRedis, sink: Sink, n: int) -> dict[str, Any]:
    """Park `outage_events` behind an open circuit; Redis memory and worker RSS around it."""
    count = ctx.outage_events
    stack = _stack(ctx, server, sink)
    client = redis.Redis(port=server.port)
    try:
        assert stack.worker is not None
        stack.warm_up(events(20, f"ow{n}"))
        _open_circuit(client, stack)
        batch = events(count, f"outage{n}")
        body_bytes = mean_body_bytes(batch[:1000])
        time.sleep(1.0)  # let the worker settle after the warm-up
        memory_before = _used_memory(client)
        rss_before = rss_kb(stack.worker.pid)
        started = time.perf_counter()
        ids = stack.enqueue(batch)
        enqueue_s = time.perf_counter() - started
        rss_peak = rss_kb(stack.worker.pid)
        hold_until = time.monotonic() + PARKED_HOLD_S
        while time.monotonic() < hold_until:  # parked: nothing may move, RSS must stay flat
            rss_peak = max(rss_peak, rss_kb(stack.worker.pid))
            time.sleep(SAMPLE_EVERY_S)
        memory_after = _used_memory(client)
        layout = _memory_layout(client, stack, ids)
        rss_parked = rss_kb(stack.worker.pid)
        ctx.check("outage", "parked events held in the ledger", len(ids), stack.ledger_left())
        ctx.check("outage", "sent while the circuit was open", 0, sink.stats()["requests"])
        ctx.check("outage", "messages published while parked", 0, client.llen(stack.settings.queue))
    finally:
        client.close()
        stack.close()
    delta = memory_after - memory_before
    return {
        "events": count,
        "body_bytes_mean": round(body_bytes, 1),
        "enqueue_many_per_s": round(count / enqueue_s, 1),
        "redis_used_memory_delta_bytes": delta,
        "redis_bytes_per_event": round(delta / count, 1),
        "redis_bytes_per_json_byte": round(delta / count / body_bytes, 3),
        "worker_rss_mb": {
            "before": round(rss_before / 1024, 1),
            "peak_while_parked": round(rss_peak / 1024, 1),
            "parked": round(rss_parked / 1024, 1),
        },
        "worker_rss_growth_mb": round((max(rss_peak, rss_parked) - rss_before) / 1024, 1),
        "memory_layout": layout,
    }


def _memory_layout(client: redis.Redis, stack: OurStack, ids: list[str]) -> dict[str, Any]:
    """Where a parked event's bytes are: its envelope hash and its share of the schedule."""
    sample = ids[:: max(1, len(ids) // LAYOUT_SAMPLE)][:LAYOUT_SAMPLE]
    envelope = [client.memory_usage(stack.keys.event(i)) or 0 for i in sample]
    sched = client.memory_usage(stack.keys.sched(PLATFORM), samples=0) or 0
    encoding = client.object("encoding", stack.keys.event(sample[0]))
    return {
        "envelope_hash_bytes_mean": round(sum(envelope) / len(envelope), 1),
        "envelope_encoding": encoding.decode() if isinstance(encoding, bytes) else encoding,
        "schedule_zset_bytes_per_event": round(sched / len(ids), 1),
        "hash_max_listpack_value": client.config_get("hash-max-listpack-value").get(
            "hash-max-listpack-value"
        ),
    }


def drained(ctx: RunContext, server: LocalRedis, sink: Sink, n: int) -> dict[str, Any]:
    """Park a backlog, close the circuit, and time its drain at the configured rate."""
    rate = ctx.drain_rate_per_s
    count = int(rate * ctx.scale(DRAIN_S, DRAIN_S_QUICK))
    stack = _stack(ctx, server, sink)
    client = redis.Redis(port=server.port)
    samples: list[tuple[float, int]] = []
    try:
        assert stack.worker is not None
        stack.warm_up(events(20, f"dw{n}"))
        _open_circuit(client, stack)
        ids = stack.enqueue(events(count, f"drain{n}"))
        time.sleep(1.0)
        rss_before = rss_kb(stack.worker.pid)
        _close_circuit(client, stack)
        reset_at = time.time()

        def done() -> bool:
            stats = sink.stats()
            samples.append((time.time(), int(stats["accepted"])))
            if not stack.worker or not stack.worker.alive():
                raise BenchError("the worker exited during the drain")
            return int(stats["unique_ids"]) >= len(ids)

        wait_for(done, 120 + 5 * count / rate, "the parked backlog to drain", SAMPLE_EVERY_S)
        drain_s = samples[-1][0] - reset_at
        rss_after = rss_kb(stack.worker.pid)
        ctx.check("outage", "lost after the drain", 0, len(ids) - sink.stats()["unique_ids"])
        ctx.check("outage", "left in the ledger after the drain", 0, stack.ledger_left())
    finally:
        client.close()
        stack.close()
    windows = _window_rates(samples)
    # The first window holds the limiter's designed burst (one second's worth), the last the tail.
    steady = windows[1:-1] or windows[1:] or windows
    return {
        "events": count,
        "drain_s": round(drain_s, 2),
        "drain_per_s": round(count / drain_s, 1),
        "window_rates_per_s": [round(w, 1) for w in windows],
        "steady_rate_per_s": round(median(steady), 1),
        "max_window_rate_per_s": round(max(steady), 1) if steady else 0.0,
        "min_window_rate_per_s": round(min(steady), 1) if steady else 0.0,
        "worker_rss_mb": {
            "before": round(rss_before / 1024, 1),
            "after": round(rss_after / 1024, 1),
        },
    }


def _window_rates(samples: list[tuple[float, int]]) -> list[float]:
    """Accepted events per second in consecutive `RATE_WINDOW_S` windows from the first one."""
    moving = [(t, n) for t, n in samples if n > 0]
    if len(moving) < 2:
        return []
    rates, (t0, n0) = [], moving[0]
    for t, n in moving[1:]:
        if t - t0 >= RATE_WINDOW_S:
            rates.append((n - n0) / (t - t0))
            t0, n0 = t, n
    return rates


def run(ctx: RunContext) -> None:
    memory: list[dict[str, Any]] = []
    drains: list[dict[str, Any]] = []
    with redis_and_sink(ctx.work, "outage") as (server, sink):
        for n in range(ctx.runs):
            ctx.say(f"outage: run {n + 1}/{ctx.runs}: {ctx.outage_events:,} events parked")
            memory.append(parked(ctx, server, sink, n))
            m = memory[-1]
            ctx.say(
                f"outage: {m['redis_bytes_per_event']:,.0f} Redis bytes/event "
                f"({m['redis_bytes_per_json_byte']:.2f}x the JSON), worker RSS growth "
                f"{m['worker_rss_growth_mb']} MB"
            )
            drains.append(drained(ctx, server, sink, n))
            d = drains[-1]
            ctx.say(
                f"outage: drained {d['events']:,} in {d['drain_s']} s, steady "
                f"{d['steady_rate_per_s']:,.0f}/s (configured {ctx.drain_rate_per_s:g}/s), "
                f"windows {d['window_rates_per_s']}"
            )
    ctx.details["outage"] = {
        "drain_rate_configured_per_s": ctx.drain_rate_per_s,
        "config": ctx.default_config.as_dict(),
        "parked": memory,
        "drain": drains,
    }
    _figures(ctx, memory, drains)


def _figures(ctx: RunContext, memory: list[dict[str, Any]], drains: list[dict[str, Any]]) -> None:
    def col(rows: list[dict[str, Any]], key: str) -> list[float]:
        return [float(r[key]) for r in rows]

    rate = ctx.drain_rate_per_s
    label = ctx.default_config.label
    parked_n = f"{ctx.outage_events:,}"
    add = ctx.figures.append
    add(
        Figure("outage", f"Redis memory per parked event ({parked_n} parked)", "bytes",
               col(memory, "redis_bytes_per_event"), "its JSON body",
               col(memory, "body_bytes_mean"), Target("<=", 2, ratio=True), config=label,
               higher_is_better=False)
    )  # fmt: skip
    add(
        Figure("outage", f"worker RSS growth, {parked_n} parked", "MB",
               col(memory, "worker_rss_growth_mb"), target=Target("<=", RSS_FLAT_MB),
               config=label, note=f"flat = grows by at most {RSS_FLAT_MB:g} MB (main + children)",
               higher_is_better=False)
    )  # fmt: skip
    add(
        Figure("outage", f"drain time, {drains[0]['events']:,} parked events", "s",
               col(drains, "drain_s"), "at exactly the configured rate",
               [drains[0]["events"] / rate], config=label, higher_is_better=False)
    )  # fmt: skip
    add(
        Figure("outage", f"projected drain time, {parked_n} parked events", "s",
               [ctx.outage_events / max(r, 1e-9) for r in col(drains, "steady_rate_per_s")],
               "at exactly the configured rate", [ctx.outage_events / rate], config=label,
               note="the outage events over the measured steady drain rate",
               higher_is_better=False)
    )  # fmt: skip
    add(
        Figure("outage", "drain rate, steady (median 5 s window)", "events/s",
               col(drains, "steady_rate_per_s"), "configured rate limit", [rate],
               Target(">=", 1 - RATE_TOLERANCE, ratio=True), config=label)
    )  # fmt: skip
    add(
        Figure("outage", "drain rate, highest 5 s window", "events/s",
               col(drains, "max_window_rate_per_s"), "configured rate limit", [rate],
               Target("<=", 1 + RATE_TOLERANCE, ratio=True), config=label,
               higher_is_better=False)
    )  # fmt: skip
