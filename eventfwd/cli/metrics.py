"""Prometheus metrics of the whole fleet, read from Redis at each scrape (`eventfwd metrics`).

The counters live in Redis (`{p}:stats`, bumped by the ledger scripts), so one exporter shows
the fleet however many workers there are, and a restart of the exporter loses nothing. Run one
per fleet. A scrape costs a handful of round trips plus the backlog and dead-letter reads of
`eventfwd.ops.snapshot` (bounded by `scan_limit`); answers are reused for `cache_s`.

Per platform (`{p}:pstats:{platform}`) the ledger also counts failures by status class
(`failed:5xx`, `failed:4xx`, `failed:none` for no response) and dead letters by reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import click
import redis
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from eventfwd.cli.base import Context, handle_errors, pass_context
from eventfwd.core.keys import Keys
from eventfwd.core.settings import Settings
from eventfwd.ops.platforms import read_pauses
from eventfwd.ops.snapshot import SCAN_LIMIT, FleetStatus, snapshot

# {p}:stats field -> (metric name without _total, help)
COUNTERS = {
    "enqueued": ("eventfwd_events_enqueued", "Events accepted into the ledger."),
    "delivered": ("eventfwd_events_delivered", "Events Moloco accepted (2xx)."),
    "failed": (
        "eventfwd_delivery_failures",
        "Attempts that failed: 5xx, timeouts, connection errors, 401/403/404 (not 429, not 4xx "
        "refusals, which are dead-lettered as rejected).",
    ),
    "retried": ("eventfwd_delivery_retries", "Events rescheduled after a transient failure."),
    "throttled": ("eventfwd_throttled", "429 answers from Moloco."),
    "throttled_local": ("eventfwd_rate_limited", "Sends deferred by the shared rate limit."),
    "parked": ("eventfwd_parked", "Events parked behind an open circuit."),
    "replayed": ("eventfwd_dead_letters_replayed", "Dead letters replayed (beat or operator)."),
    "purged": ("eventfwd_dead_letters_purged", "Dead letters purged (operator or retention)."),
    "imported": ("eventfwd_dead_letters_imported", "Dead letters imported from a file."),
    "circuit_opened": ("eventfwd_circuit_opened", "Times a platform's circuit opened."),
    "circuit_closed": ("eventfwd_circuit_closed", "Times a platform's circuit closed."),
}


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
        self.cache_s = cache_s
        self.scan_limit = scan_limit
        self._lock = threading.Lock()
        self._cached: tuple[float, FleetStatus, float] | None = None

    def _snapshot(self) -> tuple[FleetStatus, float]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.cache_s:
                snap = snapshot(self.client, self.settings, scan_limit=self.scan_limit)
                self._cached = (now, snap, time.monotonic() - now)
            return self._cached[1], self._cached[2]

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("eventfwd_up", "1 when Redis answered this scrape.")
        try:
            snap, took_s = self._snapshot()
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(
            "eventfwd_scrape_duration_seconds", "Time to read the snapshot from Redis.", took_s
        )
        yield from _counters(snap)
        yield from _backlog(snap)
        yield from _dead(snap)
        yield from _platforms(snap)
        yield from self._paused(snap)
        yield from _fleet(snap)

    def _paused(self, snap: FleetStatus) -> Iterator[Metric]:
        pids = [p.platform_id for p in snap.platforms]
        pauses = read_pauses(self.client, Keys(self.settings.key_prefix), pids)
        paused = GaugeMetricFamily(
            "eventfwd_platform_paused",
            "1 while an operator has paused the platform (`eventfwd platform pause`).",
            labels=["platform"],
        )
        paused_s = GaugeMetricFamily(
            "eventfwd_platform_paused_seconds",
            "How long the platform has been paused by hand (0 when not).",
            labels=["platform"],
        )
        for pid in pids:
            pause = pauses.get(pid)
            paused.add_metric([pid], 1 if pause else 0)
            since_s = max(0.0, (snap.now_ms - pause.at_ms) / 1000) if pause else 0.0
            paused_s.add_metric([pid], since_s)
        yield from (paused, paused_s)


def _counters(snap: FleetStatus) -> Iterator[Metric]:
    other = CounterMetricFamily(
        "eventfwd_ledger_counter", "Any other ledger counter, by name.", labels=["counter"]
    )
    dead = CounterMetricFamily(
        "eventfwd_dead_lettered", "Events moved to the dead letters, by reason.", labels=["reason"]
    )
    for field, value in snap.counters.items():
        if field.startswith("dead:"):
            dead.add_metric([field[5:]], value)
        elif field in COUNTERS:
            name, doc = COUNTERS[field]
            yield CounterMetricFamily(name, doc, value)
        else:
            other.add_metric([field], value)
    for field, (name, doc) in COUNTERS.items():
        if field not in snap.counters:
            yield CounterMetricFamily(name, doc, 0)
    yield dead
    yield other


def _backlog(snap: FleetStatus) -> Iterator[Metric]:
    backlog = GaugeMetricFamily(
        "eventfwd_backlog", "Events accepted and not yet delivered or dead.", labels=["platform"]
    )
    states = GaugeMetricFamily(
        "eventfwd_backlog_state",
        "Backlog by state: ready (claimable), in_flight, due (the pump makes it ready; parked "
        "while the circuit is open), waiting (backoff, Retry-After).",
        labels=["platform", "state"],
    )
    oldest = GaugeMetricFamily(
        "eventfwd_oldest_pending_age_seconds",
        "Age (by its timestamp) of the oldest event not yet delivered.",
        labels=["platform"],
    )
    for p in snap.platforms:
        backlog.add_metric([p.platform_id], p.backlog)
        for state in ("ready", "in_flight", "due", "waiting"):
            states.add_metric([p.platform_id, state], getattr(p, state))
        age = snap.oldest_pending_age_s(p)
        oldest.add_metric([p.platform_id], age or 0.0)
    yield backlog
    yield states
    yield oldest
    yield GaugeMetricFamily(
        "eventfwd_max_event_age_seconds",
        "EVENTFWD_MAX_EVENT_AGE_SECONDS: older events are dead-lettered as expired.",
        snap.max_event_age_s,
    )


def _dead(snap: FleetStatus) -> Iterator[Metric]:
    yield GaugeMetricFamily("eventfwd_dead_letters", "Dead letters stored now.", snap.dead)
    by_reason = GaugeMetricFamily(
        "eventfwd_dead_letters_by_reason",
        "Dead letters stored now, by platform and reason.",
        labels=["platform", "reason"],
    )
    for g in snap.dead_groups:
        by_reason.add_metric([g["platform_id"], g["reason"]], g["count"])
    yield by_reason


def _platforms(snap: FleetStatus) -> Iterator[Metric]:
    is_open = GaugeMetricFamily(
        "eventfwd_circuit_open", "1 while the platform's circuit is open.", labels=["platform"]
    )
    open_s = GaugeMetricFamily(
        "eventfwd_circuit_open_seconds",
        "How long the platform's circuit has been open (0 when closed).",
        labels=["platform"],
    )
    rate = GaugeMetricFamily(
        "eventfwd_send_rate_per_second",
        "The platform's send rate in force (429s lower it).",
        labels=["platform"],
    )
    limit = GaugeMetricFamily(
        "eventfwd_send_rate_limit_per_second",
        "The platform's configured send rate.",
        labels=["platform"],
    )
    delivered = CounterMetricFamily(
        "eventfwd_platform_delivered", "Events Moloco accepted, per platform.", labels=["platform"]
    )
    failed = CounterMetricFamily(
        "eventfwd_platform_failed",
        "Failed attempts per platform and status class (none: no response).",
        labels=["platform", "status_class"],
    )
    dead = CounterMetricFamily(
        "eventfwd_platform_dead_lettered",
        "Events dead-lettered per platform and reason.",
        labels=["platform", "reason"],
    )
    other = CounterMetricFamily(
        "eventfwd_platform_counter",
        "Other ledger counters per platform (retried, throttled, parked, replayed, ...).",
        labels=["platform", "counter"],
    )
    for p in snap.platforms:
        delivered.add_metric([p.platform_id], p.counters.get("delivered", 0))
        for name, value in sorted(p.counters.items()):
            if name.startswith("failed:"):
                failed.add_metric([p.platform_id, name[7:]], value)
            elif name.startswith("dead:"):
                dead.add_metric([p.platform_id, name[5:]], value)
            elif name not in ("delivered", "failed"):
                other.add_metric([p.platform_id, name], value)
    yield from (delivered, failed, dead, other)
    for p in snap.platforms:
        opened = p.circuit.get("state") == "open"
        is_open.add_metric([p.platform_id], 1 if opened else 0)
        since = float(p.circuit.get("opened_ms") or snap.now_ms)
        open_s.add_metric([p.platform_id], max(0.0, (snap.now_ms - since) / 1000) if opened else 0)
        rate.add_metric([p.platform_id], p.rate_per_s)
        limit.add_metric([p.platform_id], p.rate_limit_per_s)
    yield from (is_open, open_s, rate, limit)


def _fleet(snap: FleetStatus) -> Iterator[Metric]:
    queues = GaugeMetricFamily(
        "eventfwd_queue_messages", "Celery messages waiting in each queue.", labels=["queue"]
    )
    for name, n in snap.queues.items():
        queues.add_metric([name], n)
    yield queues
    if snap.beat is not None:
        yield GaugeMetricFamily(
            "eventfwd_beat_last_tick_timestamp_seconds",
            "When the pump last ran (beat's heartbeat).",
            snap.beat.last_tick_ms / 1000,
        )
    r = snap.retention
    yield CounterMetricFamily(
        "eventfwd_retention_trimmed",
        "Dead letters trimmed by retention.",
        int(r.get("trimmed_total", 0)),
    )
    yield CounterMetricFamily(
        "eventfwd_retention_unexported",
        "Dead letters trimmed by retention without an export.",
        int(r.get("unexported_total", 0)),
    )


def registry_for(
    client: redis.Redis, settings: Settings, *, cache_s: float = 5.0, scan_limit: int = SCAN_LIMIT
) -> CollectorRegistry:
    """A registry holding only the ledger collector (no process metrics of the exporter)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(client, settings, cache_s=cache_s, scan_limit=scan_limit))
    return registry


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=9808, show_default=True)
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option(
    "--cache-seconds",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Reuse one reading of Redis for this long.",
)
@click.option("--scan-limit", type=click.IntRange(min=1), default=SCAN_LIMIT, show_default=True)
@pass_context
@handle_errors
def metrics(ctx: Context, port: int, host: str, cache_seconds: float, scan_limit: int) -> None:
    """Serve the fleet's metrics for Prometheus at http://HOST:PORT/metrics (one per fleet)."""
    ctx.client.ping()  # fail now, in one line, rather than at the first scrape
    registry = registry_for(ctx.client, ctx.settings, cache_s=cache_seconds, scan_limit=scan_limit)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    click.echo(f"serving metrics at http://{host}:{server.server_port}/metrics (Ctrl-C stops)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
        click.echo("stopped")
