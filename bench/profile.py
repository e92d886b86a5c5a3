"""Where the time goes: `EventProducer.enqueue` and `DeliveryEngine.drain`, in this process.

Each is timed step by step (wrapping its collaborators: validation and the ledger round trip;
claim, POST and ack) and then run again under cProfile, whose functions are summed into
buckets (validation, redis-py, requests/urllib3/http.client, socket waits, ...). Redis's own
time per script comes from INFO commandstats, one script at a time, so the client side of each
round trip (redis-py, the socket, the scheduler) is the wall time minus it. The sink runs in its
own process, as in every delivery scenario.
"""

from __future__ import annotations

import cProfile
import pstats
import re
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import redis

from bench.context import RunContext
from bench.events import events
from bench.harness import PLATFORM, ROOT, Sink, eventfwd_env, flush, redis_and_sink
from eventfwd.core.connection import connect
from eventfwd.core.ledger import Claim, Delivery, Ledger
from eventfwd.core.settings import Settings
from producers import EventProducer
from worker.delivery import Deliverer
from worker.engine import DeliveryEngine
from worker.http_client import HttpClient

TOP_FUNCTIONS = 15
# (bucket, substrings of "file:function"); the first that matches wins.
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("socket wait/recv/send", ("method 'recv", "method 'sendall", "method 'send'", "poll'",
                               "select'", "method 'connect")),
    ("validation (schema, pydantic)", ("core/schema", "pydantic", "method 'validate_")),
    # requests with trust_env: proxies and CA bundle looked up in os.environ on every request
    ("environment lookups (os.environ, urllib proxies)", ("urllib/request.py", "<frozen os>",
                                                          "<frozen _collections_abc>")),
    ("typing.Protocol isinstance checks", ("typing.py",)),
    ("json", ("json/", "_json", "cjson")),
    ("redis-py", ("redis/",)),
    ("requests", ("requests/",)),
    ("urllib3", ("urllib3/",)),
    ("http.client / email parsing", ("http/client", "email/")),
    ("uuid", ("uuid",)),
    ("logging", ("logging/",)),
    ("eventfwd (core, producers, worker)", ("core/", "producers/", "worker/")),
]  # fmt: skip


class StepTimer:
    """Wraps callables and sums the wall time spent in each."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.totals[name] = 0.0

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.totals[name] += time.perf_counter() - started

        return timed

    def reset(self) -> None:
        self.totals = dict.fromkeys(self.totals, 0.0)

    def per_call_us(self, calls: int) -> dict[str, float]:
        return {k: round(v / calls * 1e6, 1) for k, v in self.totals.items()}


def _bucket(where: str) -> str:
    for name, needles in BUCKETS:
        if any(n in where for n in needles):
            return name
    return "other (builtins, Python stdlib)"


def cprofile(fn: Callable[[], object], calls: int) -> dict[str, Any]:
    """Run `fn` under cProfile: top functions by own time and own time per bucket, per call."""
    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = []
    buckets: dict[str, float] = {}
    for (filename, line, func), (_cc, ncalls, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{_short(filename)}:{line}({func})" if line else f"{filename}:{func}"
        rows.append((tottime, ncalls, where))
        bucket = _bucket(f"{_short(filename)}:{func}")
        buckets[bucket] = buckets.get(bucket, 0.0) + tottime
    rows.sort(reverse=True)
    total = sum(buckets.values())
    return {
        "total_us_per_call": round(total / calls * 1e6, 1),
        "buckets_us_per_call": {
            k: round(v / calls * 1e6, 1) for k, v in sorted(buckets.items(), key=lambda kv: -kv[1])
        },
        "top": [
            {
                "function": where,
                "calls_per_event": round(n / calls, 2),
                "own_us_per_event": round(t / calls * 1e6, 1),
            }
            for t, n, where in rows[:TOP_FUNCTIONS]
        ],
    }


def _short(filename: str) -> str:
    """A file name without the machine's directories (no absolute paths in the results)."""
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1]
    root = f"{ROOT}/"
    if filename.startswith(root):
        return filename[len(root) :]
    match = re.search(r"/lib/python3\.\d+/(.*)$", filename)
    return match.group(1) if match else filename.rsplit("/", 2)[-1]


def server_us_per_call(client: redis.Redis, action: Callable[[], object]) -> float:
    """Redis's own time per script call (INFO commandstats, EVALSHA) while `action` runs."""
    client.config_resetstat()
    action()
    stats = client.info("commandstats").get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    return round(stats["usec"] / max(stats["calls"], 1), 1)


def profile_enqueue(ctx: RunContext, server: Any) -> dict[str, Any]:
    n = ctx.scale(3_000, 1_000)
    settings = Settings(redis_url=server.url, rate_limit_per_s=100_000)
    producer = EventProducer(settings=settings)
    client = redis.Redis(port=server.port)
    timer = StepTimer()
    ledger = producer._ledger
    producer.validate = timer.wrap("validate", producer.validate)  # type: ignore[method-assign]
    ledger.enqueue = timer.wrap("ledger.enqueue (Lua round trip)", ledger.enqueue)  # type: ignore[method-assign]
    try:
        for event in events(200, "pw"):
            producer.enqueue(PLATFORM, event)
        batch = events(n, "pe")
        timer.reset()
        started = time.perf_counter()
        for event in batch:
            producer.enqueue(PLATFORM, event)
        wall = time.perf_counter() - started
        steps = timer.per_call_us(n)
        steps["rest of enqueue()"] = round(wall / n * 1e6 - sum(steps.values()), 1)
        flush(server)
        singles = events(n, "ps")
        server_us = {
            "enqueue.lua, 1 event a call": server_us_per_call(
                client, lambda: [producer.enqueue(PLATFORM, e) for e in singles]
            ),
        }
        many = events(ctx.many_batch, "pm")
        per_call = server_us_per_call(client, lambda: producer.enqueue_many(PLATFORM, many))
        server_us[f"enqueue.lua, per event at {ctx.many_batch} a call"] = round(
            per_call / ctx.many_batch, 1
        )
        flush(server)
        batch = events(n, "pc")
        profile = cprofile(lambda: [producer.enqueue(PLATFORM, e) for e in batch], n)
    finally:
        producer.close()
        client.close()
    return {
        "events": n,
        "wall_us_per_event": round(wall / n * 1e6, 1),
        "steps_us_per_event": steps,
        "redis_server_us": server_us,
        "cprofile": profile,
    }


class InlineExecutor:
    """Runs what the engine submits at once, in the submitting thread: one wave's POSTs one
    after another, so the step timers and cProfile (which sees one thread) see every step."""

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args))
        return future


def _engine(settings: Settings, ledger: Ledger, http: HttpClient) -> DeliveryEngine:
    """An engine of `batch_size` threads whose POSTs run inline (see `InlineExecutor`)."""
    engine = DeliveryEngine(Deliverer(settings, ledger, http), threads=settings.batch_size)
    engine._pool.shutdown()
    engine._pool = InlineExecutor()  # type: ignore[assignment]
    return engine


def profile_deliver(ctx: RunContext, server: Any, sink: Sink) -> dict[str, Any]:
    """One process draining the ledger: `DeliveryEngine.drain()`, its POSTs one after another.

    The worker sends a wave's POSTs on threads; here they run in this thread so that the step
    timers and cProfile see every step of an event's CPU (the waits do not overlap, so the
    wall time per event is higher than a worker's). A claim hands out up to `batch_size`
    events (the engine's free threads), and a wave's deliveries share one ack.
    """
    n = ctx.scale(3_000, 1_000)
    settings = Settings.from_mapping(eventfwd_env(server.url, sink.url, ctx.default_config))
    batch = settings.batch_size
    producer = EventProducer(settings=settings)
    client = connect(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
    ledger = Ledger(client, settings)
    http = HttpClient(timeout_s=settings.http_timeout_s)
    timer = StepTimer()
    ledger.claim = timer.wrap(f"claim (up to {batch} events per Lua round trip)", ledger.claim)  # type: ignore[method-assign]
    http.post = timer.wrap("POST (urllib3)", http.post)  # type: ignore[method-assign]
    ledger.ack = timer.wrap("ack (one Lua round trip per wave)", ledger.ack)  # type: ignore[method-assign]
    engine = _engine(settings, ledger, http)

    def deliver_all() -> list[str]:
        return list(engine.drain(timeout_s=300).values())

    try:
        producer.enqueue_many(PLATFORM, events(100, "dw"))
        deliver_all()
        producer.enqueue_many(PLATFORM, events(n, "dd"))
        timer.reset()
        started = time.perf_counter()
        outcomes = deliver_all()
        wall = time.perf_counter() - started
        steps = timer.per_call_us(n)
        steps["rest of drain()"] = round(wall / n * 1e6 - sum(steps.values()), 1)
        producer.enqueue_many(PLATFORM, events(n, "dp"))
        profile = cprofile(deliver_all, n)
        ctx.check("profile", "in-process deliveries", n, outcomes.count("delivered"))
        server_us = _claim_ack_server_us(producer, ledger, server, n, batch)
    finally:
        producer.close()
        http.close()
        client.close()
    return {
        "events": n,
        "batch": batch,
        "wall_us_per_event": round(wall / n * 1e6, 1),
        "per_s_one_process": round(n / wall, 1),
        "steps_us_per_event": steps,
        "redis_server_us": server_us,
        "cprofile": profile,
    }


def _claim_ack_server_us(
    producer: EventProducer, ledger: Ledger, server: Any, n: int, batch: int
) -> dict[str, float]:
    """Redis's time per event in claim.lua and in ack.lua: each wave claimed, then acked, each
    call read from INFO commandstats on its own (the in-flight cap allows only so many claimed
    and not yet acked, so the phases cannot be run one after the other)."""
    client = redis.Redis(port=server.port)
    engine_id = f"bench-profile-{uuid.uuid4().hex[:6]}"
    claim_us = ack_us = 0.0
    claimed = waves = 0
    try:
        producer.enqueue_many(PLATFORM, events(n, "ds"))
        while claimed < n:
            box: list[Claim] = []
            claim_us += server_us_per_call(
                client,
                lambda box=box: box.extend(ledger.claim(engine_id, uuid.uuid4().hex, batch).claims),
            )
            if not box:
                break
            deliveries = [Delivery(c.event_id, c.token, 1, 200) for c in box]
            ack_us += server_us_per_call(client, lambda d=deliveries: ledger.ack(d))
            claimed += len(box)
            waves += 1
    finally:
        client.close()
    per = max(claimed, 1)
    return {
        f"claim.lua, per event ({claimed / max(waves, 1):.0f} a call)": round(claim_us / per, 1),
        f"ack.lua, per event ({claimed / max(waves, 1):.0f} a call)": round(ack_us / per, 1),
    }


def run(ctx: RunContext) -> None:
    from bench import pyspy

    with redis_and_sink(ctx.work, "profile") as (server, sink):
        ctx.say("profile: enqueue() in process")
        enqueue = profile_enqueue(ctx, server)
        flush(server)
        ctx.say("profile: DeliveryEngine.drain() in process")
        deliver = profile_deliver(ctx, server, sink)
        flush(server)
        ctx.say("profile: sampling a live worker with py-spy")
        worker = pyspy.sample_worker(ctx, server, sink)
    ctx.details["profile"] = {"enqueue": enqueue, "deliver": deliver, "worker_py_spy": worker}
    for name, p in (("enqueue()", enqueue), ("drain()", deliver)):
        ctx.say(f"profile: {name} {p['wall_us_per_event']} us/event {p['steps_us_per_event']}")
