"""The metric families follow Prometheus's naming rules, and every ledger counter has one."""

from __future__ import annotations

import re

import pytest

from eventfwd.core.latency import (
    E2E_BOUNDS_MS,
    RTT_BOUNDS_MS,
    Histogram,
    bucket_index,
    parse,
)
from eventfwd.core.vocabulary import Counter
from eventfwd.ops.metrics import FAMILIES, FLEET_COUNTERS, PLATFORM_COUNTERS, SUMMED
from producers.metrics import FAMILIES as PRODUCER_FAMILIES

ALL = {name: (f.kind, f.labels) for name, f in FAMILIES.items()} | {
    name: (kind, labels) for name, (kind, labels, _doc) in PRODUCER_FAMILIES.items()
}


@pytest.mark.parametrize("name", sorted(ALL))
def test_each_family_is_named_by_prometheus_rules(name: str) -> None:
    kind, labels = ALL[name]
    assert re.fullmatch(r"eventfwd_[a-z0-9_]+", name)
    assert (kind == "counter") == name.endswith("_total")
    assert "_by_" not in name and "counter" not in labels
    assert not re.search(r"_(ms|milliseconds|minutes|hours|kb|mb|since)(_|$)", name)
    # a point in time is a _timestamp_seconds gauge, not a "seconds since" one (a configured
    # duration such as the maximum event age is fine)
    assert name.startswith("eventfwd_max_") or not re.search(r"_(age|open|paused)_seconds", name)
    if kind == "histogram":
        assert name.endswith("_seconds")


def test_every_ledger_counter_is_served_by_a_family() -> None:
    mapped = set(PLATFORM_COUNTERS) | set(FLEET_COUNTERS) | SUMMED
    assert set(Counter) <= mapped, set(Counter) - mapped
    for name, _labels in [*PLATFORM_COUNTERS.values(), *FLEET_COUNTERS.values()]:
        assert name in FAMILIES


@pytest.mark.parametrize(
    ("value_ms", "index"), [(0, 0), (5, 0), (5.1, 1), (30000, 11), (30001, 12), (10**9, 12)]
)
def test_a_round_trip_falls_in_the_first_bucket_whose_bound_holds_it(
    value_ms: float, index: int
) -> None:
    assert bucket_index(value_ms, RTT_BOUNDS_MS) == index


def test_bounds_grow_strictly() -> None:
    for bounds in (RTT_BOUNDS_MS, E2E_BOUNDS_MS):
        assert list(bounds) == sorted(set(bounds))


def test_a_hash_reads_back_as_cumulative_buckets_and_unknown_fields_are_skipped() -> None:
    lat = parse({"rtt:2xx:0": "2", "rtt:2xx:3": "1", "rtt:2xx:sum_ms": "60", "e2e:15": "1",
                 "e2e:sum_ms": "9e9", "later:thing": "1", "rtt:2xx:99": "1"})  # fmt: skip
    rtt = lat.rtt["2xx"]
    assert rtt.count == 3 and rtt.sum_ms == 60
    assert rtt.cumulative()[0] == (5.0, 2) and rtt.cumulative()[-1] == (float("inf"), 3)
    assert lat.e2e.cumulative()[-1] == (float("inf"), 1)
    assert Histogram(RTT_BOUNDS_MS).count == 0
