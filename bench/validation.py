"""Validation: the worst-case time `validate_event` spends per KiB of hostile input.

No Redis, no worker: one process, the validator alone. Each hostile shape (many unknown keys,
typo-like keys that defeat the suggestion cache, many broken items, deep nesting, long strings,
and inputs far over the 64 KiB limit) is built once just under the limit and once far over it;
each is validated a few times and the fastest time is kept (the least disturbed by other work).
The figure is the worst shape's time per KiB of its JSON; the baseline is the same figure for
the sample events of every type, which take the fast path.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from bench.context import RunContext
from bench.measure import Figure, Target
from eventfwd.core.errors import InvalidEvent
from eventfwd.core.schema import MAX_EVENT_BYTES, validate_event
from eventfwd.core.schema.clean import suggestion
from eventfwd.devkit.samples import sample_events

REPEATS = 5
NOW_MS = 1_767_225_700_000
# Hostile input must cost no more per KiB than this: at 64 KiB, about 50 ms of one core.
TARGET_US_PER_KIB = 800.0


def _base(**extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_type": "ADD_TO_CART",
        "timestamp": NOW_MS - 1_000,
        "channel_type": "SITE",
        "user_id": "u-1",
        "items": [{"id": "sku-1"}],
    }
    event.update(extra)
    return event


def _filled(make: Callable[[int], dict[str, Any]], limit: int) -> dict[str, Any]:
    """The largest event `make(n)` builds that stays under `limit` bytes of JSON (doubling)."""
    n = 1
    while len(json.dumps(make(n * 2))) < limit:
        n *= 2
    return make(n)


def shapes() -> dict[str, dict[str, Any]]:
    """Hostile events by name: each shape just under the limit, and some far over it."""
    under = MAX_EVENT_BYTES - 1_024

    def deep(n: int) -> dict[str, Any]:
        value: Any = 1
        for _ in range(n):
            value = [value]
        return _base(extra=value)

    return {
        "unknown keys, under": _filled(lambda n: _base(**{f"x{i}": 1 for i in range(n)}), under),
        "typo-like keys, under": _filled(
            lambda n: _base(**{f"serach_query{i}": 1 for i in range(n)}), under
        ),
        "broken items, under": _filled(
            lambda n: _base(items=[{"quantity": "many", "price": {"amount": "x"}}] * n), under
        ),
        "nested objects, under": _filled(lambda n: _base(extra=[{"a": [{"b": {}}]}] * n), under),
        "deep nesting": deep(100_000),
        "long string, under": _base(page_id="p" * (under - 200)),
        "unknown keys, 200,000": _base(**{f"x{i}": 1 for i in range(200_000)}),
        "empty items, 1,000,000": _base(items=[{}] * 1_000_000),
        "long unknown key, 1 MB": _base(**{"k" * 1_000_000: 1}),
    }


def _time_s(event: dict[str, Any]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        suggestion.cache_clear()  # a hostile caller sends keys the cache has not seen
        started = time.perf_counter()
        with contextlib.suppress(InvalidEvent):
            validate_event(event, now_ms=NOW_MS)
        best = min(best, time.perf_counter() - started)
    return best


def _kib(event: dict[str, Any]) -> float:
    try:
        return len(json.dumps(event)) / 1024
    except RecursionError:  # the deep shape: count its brackets
        return 100_000 * 2 / 1024


def measure() -> dict[str, dict[str, float]]:
    """Per shape: its size in KiB, its best time in ms and its µs per KiB."""
    out: dict[str, dict[str, float]] = {}
    for name, event in shapes().items():
        kib, took_s = _kib(event), _time_s(event)
        out[name] = {"kib": kib, "ms": took_s * 1e3, "us_per_kib": took_s * 1e6 / kib}
    return out


def common_us_per_kib() -> float:
    samples = list(sample_events(8))
    kib = sum(_kib(e) for e in samples)
    took_s = 0.0
    for event in samples:
        took_s += _time_s(dict(event, timestamp=NOW_MS - 1_000))
    return took_s * 1e6 / kib


def run(ctx: RunContext) -> None:
    worst: list[float] = []
    slowest_ms: list[float] = []
    common: list[float] = []
    for _ in range(ctx.runs):
        by_shape = measure()
        ctx.details.setdefault("validation", []).append(by_shape)
        worst.append(max(s["us_per_kib"] for s in by_shape.values()))
        slowest_ms.append(max(s["ms"] for s in by_shape.values()))
        common.append(common_us_per_kib())
    name = max(by_shape, key=lambda n: by_shape[n]["us_per_kib"])
    ctx.figures.append(
        Figure("validation", "worst-case validation time per KiB of input", "µs/KiB", worst,
               "sample events (fast path)", common, Target("<=", TARGET_US_PER_KIB),
               note=f"worst shape: {name}", higher_is_better=False)
    )  # fmt: skip
    ctx.figures.append(
        Figure("validation", "slowest hostile event", "ms", slowest_ms,
               higher_is_better=False)
    )  # fmt: skip
    for shape, s in by_shape.items():
        ctx.say(f"validation: {shape}: {s['kib']:,.0f} KiB in {s['ms']:.2f} ms "
                f"({s['us_per_kib']:,.1f} µs/KiB)")  # fmt: skip
