"""Prometheus metrics of a web app's producer: enqueue latency and the spool's size.

    from prometheus_client import REGISTRY
    from producers.metrics import ProducerMetrics

    producer = EventProducer()
    ProducerMetrics(producer).register(REGISTRY)   # the registry your app's /metrics serves

Only this module needs prometheus-client (the app's own); `producers` never imports it.
Enqueue latency is observed in the web process, so it is served there: the fleet's exporter
(`eventfwd metrics`) cannot see it. Under gunicorn or uwsgi with several processes, use
prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR): the histogram and the counter
below are plain `prometheus_client` ones, which that mode aggregates across processes. The spool's
figures are read from its directory at each scrape (one per host, whatever the processes).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from producers.base import ProducerBase
from producers.spool import SpoolStatus

ENQUEUE_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

# name -> (type, labels, help): the reference page docs/reference/metrics.md lists them.
FAMILIES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "eventfwd_producer_enqueue_duration_seconds": (
        "histogram",
        ("outcome",),
        "Time one enqueue/enqueue_many call took (outcome: ok, error), spooling included.",
    ),
    "eventfwd_producer_enqueued_events_total": (
        "counter",
        ("outcome",),
        "Events handed to enqueue calls, by outcome (ok: stored or spooled; error: raised).",
    ),
    "eventfwd_producer_spool_events": (
        "gauge",
        ("state",),
        "Events in the local spool waiting for Redis (state: ready, claimed by a drainer).",
    ),
    "eventfwd_producer_spool_bytes": ("gauge", (), "Bytes the spool's files take."),
    "eventfwd_producer_spool_limit_bytes": ("gauge", (), "EVENTFWD_SPOOL_MAX_MB, in bytes."),
    "eventfwd_producer_spool_oldest_timestamp_seconds": (
        "gauge",
        (),
        "When the oldest batch still in the spool was written (absent when it is empty).",
    ),
}


class ProducerMetrics(Collector):
    """A collector for one producer; register it once, in the registry your app serves."""

    def __init__(self, producer: ProducerBase) -> None:
        self.producer = producer
        name = "eventfwd_producer_enqueue_duration_seconds"
        # registry=None: this collector yields it, so that one register() covers everything.
        self.duration = Histogram(
            name, FAMILIES[name][2], ["outcome"], buckets=ENQUEUE_BUCKETS_S, registry=None
        )
        name = "eventfwd_producer_enqueued_events_total"
        # prometheus-client adds the _total itself
        self.events = Counter(name[: -len("_total")], FAMILIES[name][2], ["outcome"], registry=None)
        for outcome in ("ok", "error"):
            self.events.labels(outcome)  # both shown from the start, at 0
        producer.observe_enqueues(self._observe)

    def register(self, registry: CollectorRegistry) -> ProducerMetrics:
        registry.register(self)
        return self

    def _observe(self, duration_s: float, events: int, ok: bool) -> None:
        outcome = "ok" if ok else "error"
        self.duration.labels(outcome).observe(duration_s)
        self.events.labels(outcome).inc(events)

    def collect(self) -> Iterator[Metric]:
        yield from self.duration.collect()
        yield from self.events.collect()
        status = self.producer.spool_status()
        if status is None:
            return
        yield from self._spool(status)

    @staticmethod
    def _spool(status: SpoolStatus) -> Iterator[Metric]:
        name = "eventfwd_producer_spool_events"
        events = GaugeMetricFamily(name, FAMILIES[name][2], labels=["state"])
        events.add_metric(["ready"], status.ready_events)
        events.add_metric(["claimed"], status.claimed_events)
        yield events
        for name, value in (
            ("eventfwd_producer_spool_bytes", status.used_bytes),
            ("eventfwd_producer_spool_limit_bytes", status.max_bytes),
        ):
            yield GaugeMetricFamily(name, FAMILIES[name][2], value=value)
        if status.oldest_ms is not None:
            name = "eventfwd_producer_spool_oldest_timestamp_seconds"
            yield GaugeMetricFamily(name, FAMILIES[name][2], value=status.oldest_ms / 1000)
