"""The fleet's Prometheus metrics, read from Redis at each scrape (served by `eventfwd metrics`).

The counters live in Redis (`{p}:stats` and `{p}:pstats:{platform}`, bumped by the ledger
scripts), and so do the latency histograms (`{p}:hist:{platform}`, eventfwd/core/latency.py):
one exporter shows the whole fleet however many workers and prefork children there are, and a
restart of the exporter loses nothing. Run one per fleet. A scrape costs a handful of round
trips plus the backlog and dead-letter reads of `eventfwd.ops.snapshot` (bounded by
`scan_limit`); answers are reused for `cache_s`.

Names follow Prometheus's rules: one family per quantity, told apart by labels; base units
(seconds, bytes); points in time as `_timestamp_seconds`, not "seconds since" gauges. Every
family is declared in `FAMILIES`, which the reference page docs/reference/metrics.md is
generated from; the collector cannot emit a family that is not declared there.
"""

from __future__ import annotations

import platform as _platform_mod
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from eventfwd.core.connection import text
from eventfwd.core.keys import Keys
from eventfwd.core.latency import PlatformLatency, parse
from eventfwd.core.settings import Settings
from eventfwd.core.vocabulary import Counter
from eventfwd.ops.platforms import parse_pause
from eventfwd.ops.snapshot import SCAN_LIMIT, FleetStatus, PlatformStatus, snapshot

P, S = ("platform",), ("platform", "status_class")


@dataclass(frozen=True)
class Family:
    """One metric family: its exposed name, type, labels and help."""

    name: str
    kind: str  # counter, gauge, histogram
    labels: tuple[str, ...]
    help: str

    def new(self) -> Any:  # each kind's add_metric takes other arguments
        if self.kind == "counter":
            return CounterMetricFamily(self.name, self.help, labels=self.labels)
        if self.kind == "histogram":
            return HistogramMetricFamily(self.name, self.help, labels=self.labels)
        return GaugeMetricFamily(self.name, self.help, labels=self.labels)


def _families(*rows: tuple[str, str, tuple[str, ...], str]) -> dict[str, Family]:
    return {name: Family(name, kind, labels, doc) for name, kind, labels, doc in rows}


FAMILIES = _families(
    ("eventfwd_up", "gauge", (), "1 when Redis answered this scrape, else 0 (and nothing else)."),
    ("eventfwd_build_info", "gauge", ("version", "python"), "Always 1; the exporter's version."),
    ("eventfwd_scrape_duration_seconds", "gauge", (), "Time to read the snapshot from Redis."),
    # counters per platform, from {p}:pstats:{platform}
    ("eventfwd_events_enqueued_total", "counter", P, "Events accepted into the ledger."),
    ("eventfwd_events_delivered_total", "counter", P, "Events Moloco accepted (2xx)."),
    ("eventfwd_delivery_failures_total", "counter", S,
     "Attempts that failed, by status class (none: no answer, a timeout or connection error). "
     "429s are counted as eventfwd_moloco_throttled_total as well."),
    ("eventfwd_delivery_retries_total", "counter", P,
     "Events rescheduled after a transient failure."),
    ("eventfwd_moloco_throttled_total", "counter", P, "429 answers from Moloco."),
    ("eventfwd_events_parked_total", "counter", P, "Events parked behind an open circuit."),
    ("eventfwd_dead_lettered_total", "counter", ("platform", "reason"),
     "Events moved to the dead letters, by reason."),
    ("eventfwd_dead_letters_replayed_total", "counter", P,
     "Dead letters replayed (beat or operator)."),
    ("eventfwd_dead_letters_purged_total", "counter", P,
     "Dead letters purged by an operator."),
    ("eventfwd_platform_pause_actions_total", "counter", ("platform", "action"),
     "Operator pauses and resumes (action: paused, resumed)."),
    # fleet-wide counters, from {p}:stats and {p}:retention
    ("eventfwd_dead_letters_imported_total", "counter", (), "Dead letters imported from a file."),
    ("eventfwd_circuit_transitions_total", "counter", ("to",),
     "Times a circuit opened (to=open) or closed (to=closed), all platforms."),
    ("eventfwd_circuit_probes_total", "counter", (), "Probes sent through an open circuit."),
    ("eventfwd_dead_letters_trimmed_total", "counter", ("exported",),
     "Dead letters trimmed by retention, with (exported=true) or without a copy on disk."),
    # the scheduler's state per platform
    ("eventfwd_backlog_events", "gauge", ("platform", "state"),
     "Events accepted and not yet delivered or dead, by state: ready (claimable), in_flight, "
     "due (the pump makes it ready; parked while the circuit is open), waiting (backoff, "
     "Retry-After)."),
    ("eventfwd_oldest_pending_event_timestamp_seconds", "gauge", P,
     "Timestamp of the oldest event not yet delivered (absent when none waits)."),
    ("eventfwd_max_event_age_seconds", "gauge", (),
     "EVENTFWD_MAX_EVENT_AGE_SECONDS: older events are dead-lettered as expired."),
    ("eventfwd_in_flight_cap", "gauge", P,
     "The platform's adaptive in-flight cap in force (fleet-wide, concurrency.lua)."),
    ("eventfwd_send_rate_per_second", "gauge", P,
     "The platform's send rate in force (429s lower it, it recovers towards the limit)."),
    ("eventfwd_send_rate_limit_per_second", "gauge", P, "The platform's configured send rate."),
    ("eventfwd_throttled_until_timestamp_seconds", "gauge", P,
     "Until when Moloco's Retry-After holds the platform's sends (absent when it does not)."),
    ("eventfwd_circuit_open", "gauge", P, "1 while the platform's circuit is open."),
    ("eventfwd_circuit_opened_timestamp_seconds", "gauge", P,
     "When the platform's open circuit opened (absent while closed)."),
    ("eventfwd_platform_paused", "gauge", P,
     "1 while an operator has paused the platform (`eventfwd platform pause`)."),
    ("eventfwd_platform_paused_timestamp_seconds", "gauge", P,
     "When the operator paused the platform (absent when not paused)."),
    ("eventfwd_dead_letters", "gauge", ("platform", "reason"),
     "Dead letters stored now. When the scan stops at --scan-limit, the rest is reported as "
     'platform="", reason="unscanned".'),
    ("eventfwd_queue_messages", "gauge", ("queue",), "Celery messages waiting in each queue."),
    ("eventfwd_beat_last_tick_timestamp_seconds", "gauge", (),
     "When beat's pump last ran (its heartbeat)."),
    # histograms, from {p}:hist:{platform}
    ("eventfwd_moloco_request_duration_seconds", "histogram", S,
     "Round trip of each POST to Moloco, by status class (none: no answer)."),
    ("eventfwd_delivery_delay_seconds", "histogram", P,
     "Delay from enqueue to delivery (Moloco's 2xx), retries and outages included."),
)  # fmt: skip

# {p}:pstats:{platform} field -> (family, extra label values)
PLATFORM_COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    Counter.ENQUEUED: ("eventfwd_events_enqueued_total", ()),
    Counter.DELIVERED: ("eventfwd_events_delivered_total", ()),
    Counter.RETRIED: ("eventfwd_delivery_retries_total", ()),
    Counter.THROTTLED: ("eventfwd_moloco_throttled_total", ()),
    Counter.PARKED: ("eventfwd_events_parked_total", ()),
    Counter.REPLAYED: ("eventfwd_dead_letters_replayed_total", ()),
    Counter.PURGED: ("eventfwd_dead_letters_purged_total", ()),
    Counter.PAUSED: ("eventfwd_platform_pause_actions_total", ("paused",)),
    Counter.RESUMED: ("eventfwd_platform_pause_actions_total", ("resumed",)),
}
# {p}:stats field -> (family, label values): counters kept for the fleet only
FLEET_COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    Counter.IMPORTED: ("eventfwd_dead_letters_imported_total", ()),
    Counter.CIRCUIT_OPENED: ("eventfwd_circuit_transitions_total", ("open",)),
    Counter.CIRCUIT_CLOSED: ("eventfwd_circuit_transitions_total", ("closed",)),
    Counter.PROBES: ("eventfwd_circuit_probes_total", ()),
}
# `failed` is the sum of `failed:<class>`, served by class; `dead:<reason>` likewise.
SUMMED = {Counter.FAILED}
STATES = ("ready", "in_flight", "due", "waiting")
_Add = Callable[[str, tuple[str, ...], float], None]


def _version() -> str:
    try:
        return version("eventfwd")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "unknown"


class LedgerCollector(Collector):
    """A custom collector: every metric is computed from Redis when Prometheus scrapes."""

    def __init__(
        self,
        client: redis.Redis,
        settings: Settings,
        *,
        cache_s: float = 5.0,
        scan_limit: int = SCAN_LIMIT,
    ) -> None:
        self.client = client
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.cache_s = cache_s
        self.scan_limit = scan_limit
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        build = FAMILIES["eventfwd_build_info"].new()
        build.add_metric([_version(), _platform_mod.python_version()], 1)
        yield build
        up = FAMILIES["eventfwd_up"].new()
        try:
            metrics = self._read()
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from metrics

    def _read(self) -> list[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.cache_s:
                snap = snapshot(self.client, self.settings, scan_limit=self.scan_limit)
                pids = [p.platform_id for p in snap.platforms]
                latency = read_latency(self.client, self.keys, pids)
                took = FAMILIES["eventfwd_scrape_duration_seconds"].new()
                took.add_metric([], time.monotonic() - now)
                metrics = [took, *families(snap, latency)]
                self._cached = (now, metrics)
            return self._cached[1]


def read_latency(client: redis.Redis, keys: Keys, pids: list[str]) -> dict[str, PlatformLatency]:
    """Each platform's `{p}:hist:{platform}`, in one round trip."""
    pipe = client.pipeline(transaction=False)
    for pid in pids:
        pipe.hgetall(keys.hist(pid))
    return {
        pid: parse({text(k): text(v) for k, v in fields.items()})
        for pid, fields in zip(pids, pipe.execute(), strict=True)
    }


def families(snap: FleetStatus, latency: dict[str, PlatformLatency]) -> list[Metric]:
    """Every family but `up`, `build_info` and the scrape's duration, from one snapshot."""
    out: dict[str, Any] = {name: fam.new() for name, fam in FAMILIES.items()}

    def add(name: str, labels: tuple[str, ...], value: float) -> None:
        out[name].add_metric(list(labels), value)

    for p in snap.platforms:
        _platform_counters(p, add)
        _platform_state(snap, p, add)
        _latency(p.platform_id, latency.get(p.platform_id, PlatformLatency()), out)
    for field, (name, labels) in FLEET_COUNTERS.items():
        add(name, labels, snap.counters.get(field, 0))
    r = snap.retention
    trimmed, unexported = int(r.get("trimmed_total", 0)), int(r.get("unexported_total", 0))
    add("eventfwd_dead_letters_trimmed_total", ("true",), max(0, trimmed - unexported))
    add("eventfwd_dead_letters_trimmed_total", ("false",), unexported)
    add("eventfwd_max_event_age_seconds", (), snap.max_event_age_s)
    scanned = 0
    for g in snap.dead_groups:
        add("eventfwd_dead_letters", (g["platform_id"], g["reason"]), g["count"])
        scanned += g["count"]
    if snap.dead > scanned:
        add("eventfwd_dead_letters", ("", "unscanned"), snap.dead - scanned)
    for queue, n in snap.queues.items():
        add("eventfwd_queue_messages", (queue,), n)
    if snap.beat is not None:
        add("eventfwd_beat_last_tick_timestamp_seconds", (), snap.beat.last_tick_ms / 1000)
    skip = {"eventfwd_up", "eventfwd_build_info", "eventfwd_scrape_duration_seconds"}
    return [m for name, m in out.items() if name not in skip]


def _platform_counters(p: PlatformStatus, add: _Add) -> None:
    pid = p.platform_id
    for field, (name, labels) in PLATFORM_COUNTERS.items():
        add(name, (pid, *labels), p.counters.get(field, 0))
    for field, value in p.counters.items():
        kind, _, detail = field.partition(":")
        if detail and kind == Counter.FAILED:
            add("eventfwd_delivery_failures_total", (pid, detail), value)
        elif detail and kind == "dead":
            add("eventfwd_dead_lettered_total", (pid, detail), value)


def _platform_state(snap: FleetStatus, p: PlatformStatus, add: _Add) -> None:
    pid = p.platform_id
    pause = parse_pause(p.paused)
    paused_ms = pause.at_ms if pause else None
    for state in STATES:
        add("eventfwd_backlog_events", (pid, state), getattr(p, state))
    if p.oldest_event_ms:
        add("eventfwd_oldest_pending_event_timestamp_seconds", (pid,), p.oldest_event_ms / 1000)
    add("eventfwd_in_flight_cap", (pid,), p.cap)
    add("eventfwd_send_rate_per_second", (pid,), p.rate_per_s)
    add("eventfwd_send_rate_limit_per_second", (pid,), p.rate_limit_per_s)
    if p.paused_until_ms:
        add("eventfwd_throttled_until_timestamp_seconds", (pid,), p.paused_until_ms / 1000)
    is_open = p.circuit.get("state") == "open"
    add("eventfwd_circuit_open", (pid,), 1 if is_open else 0)
    if is_open:
        opened_ms = float(p.circuit.get("opened_ms") or snap.now_ms)
        add("eventfwd_circuit_opened_timestamp_seconds", (pid,), opened_ms / 1000)
    add("eventfwd_platform_paused", (pid,), 1 if paused_ms is not None else 0)
    if paused_ms is not None:
        add("eventfwd_platform_paused_timestamp_seconds", (pid,), paused_ms / 1000)


def _latency(pid: str, lat: PlatformLatency, out: dict[str, Any]) -> None:
    rtt = out["eventfwd_moloco_request_duration_seconds"]
    for status_class, hist in sorted(lat.rtt.items()):
        rtt.add_metric([pid, status_class], _buckets(hist.cumulative()), hist.sum_ms / 1000)
    e2e = out["eventfwd_delivery_delay_seconds"]
    e2e.add_metric([pid], _buckets(lat.e2e.cumulative()), lat.e2e.sum_ms / 1000)


def _buckets(cumulative: list[tuple[float, int]]) -> list[tuple[str, float]]:
    return [("+Inf" if b == float("inf") else _le(b / 1000), n) for b, n in cumulative]


def _le(seconds: float) -> str:
    return f"{seconds:g}"
