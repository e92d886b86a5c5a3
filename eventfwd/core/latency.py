"""Latency histograms kept in Redis, fleet-wide: their buckets and field names.

Every worker process observes Moloco's round trip and the delay from enqueue to delivery, and
Celery's prefork children come and go; so the observations are counted where the ledger's
counters are, in Redis (`{p}:hist:{platform}`, one hash per platform), by the scripts that
record the outcome, and `eventfwd metrics` serves them for the whole fleet.

Fields of `{p}:hist:{platform}` (counts are per bucket, not cumulative; values in ms):

    rtt:{class}:{i}      attempts whose round trip fell in bucket i (class: 2xx..5xx, none)
    rtt:{class}:sum_ms   their round trips, summed
    e2e:{i}              deliveries whose delay from enqueue fell in bucket i
    e2e:sum_ms           those delays, summed

Bucket i holds values <= BOUNDS[i] (and > BOUNDS[i - 1]); i == len(BOUNDS) is +Inf. The
scripts that observe (ack.lua for 2xx and the delivery delay, reschedule.lua and dead.lua for
failures) take the bounds from `lua/latency.lua`, a copy of the ones here that
`tests/integration/test_keys.py` holds in step.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

RTT_BOUNDS_MS: tuple[int, ...] = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
E2E_BOUNDS_MS: tuple[int, ...] = (
    100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000, 900_000, 3_600_000,
    21_600_000, 86_400_000, 604_800_000,
)  # fmt: skip
RTT, E2E = "rtt", "e2e"


def bucket_index(value_ms: float, bounds: Sequence[int]) -> int:
    """The bucket a value falls in: the first bound >= value, or len(bounds) for +Inf."""
    return bisect_left(bounds, value_ms)


def rtt_field(status_class: str, index: int | str) -> str:
    return f"{RTT}:{status_class}:{index}"


def e2e_field(index: int | str) -> str:
    return f"{E2E}:{index}"


@dataclass
class Histogram:
    """One series: counts per bucket (not cumulative), and the sum, in ms."""

    bounds: tuple[int, ...]
    counts: list[int] = field(default_factory=list)
    sum_ms: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound in ms, count <= it) per bucket, +Inf last: Prometheus's `le` buckets."""
        out, total = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            out.append((float(bound), total))
        return out


@dataclass
class PlatformLatency:
    """A platform's histograms: round trip by status class, and enqueue-to-delivery delay."""

    rtt: dict[str, Histogram] = field(default_factory=dict)
    e2e: Histogram = field(default_factory=lambda: Histogram(E2E_BOUNDS_MS))


def parse(fields: Mapping[str, str]) -> PlatformLatency:
    """Read one `{p}:hist:{platform}` hash; fields this version does not know are skipped."""
    out = PlatformLatency()
    for name, raw in fields.items():
        parts = name.split(":")
        try:
            value = float(raw)
            if parts[0] == RTT and len(parts) == 3:
                hist = out.rtt.setdefault(parts[1], Histogram(RTT_BOUNDS_MS))
                _add(hist, parts[2], value)
            elif parts[0] == E2E and len(parts) == 2:
                _add(out.e2e, parts[1], value)
        except (ValueError, IndexError):
            continue
    return out


def _add(hist: Histogram, part: str, value: float) -> None:
    if part == "sum_ms":
        hist.sum_ms += value
    else:
        hist.counts[int(part)] += int(value)
