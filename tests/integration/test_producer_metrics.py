"""A web app's producer metrics: enqueue latency by outcome and the spool's size."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from eventfwd.core.errors import EnqueueError
from eventfwd.core.settings import Settings
from producers import EventProducer
from producers.metrics import FAMILIES, ProducerMetrics
from tests.conftest import example_events

pytestmark = pytest.mark.integration


def read(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_registered_producer_reports_enqueue_latency_and_event_counts(
    settings: Settings,
) -> None:
    registry = CollectorRegistry()
    with EventProducer(settings=settings) as producer:
        ProducerMetrics(producer).register(registry)
        producer.enqueue_many("acme", example_events()[1:4])
        producer.enqueue("acme", example_events()[1] | {"id": "another"})
    m = read(registry)
    ok = (("outcome", "ok"),)
    assert m[("eventfwd_producer_enqueue_duration_seconds_count", ok)] == 2
    assert 0 < m[("eventfwd_producer_enqueue_duration_seconds_sum", ok)] < 5
    assert m[("eventfwd_producer_enqueued_events_total", ok)] == 4
    assert m[("eventfwd_producer_enqueued_events_total", (("outcome", "error"),))] == 0
    assert not any(name.startswith("eventfwd_producer_spool") for name, _ in m)


def test_a_failed_enqueue_is_observed_as_an_error(tmp_path: Path) -> None:
    settings = Settings(redis_url="redis://127.0.0.1:1/0")
    registry = CollectorRegistry()
    producer = EventProducer(settings=settings)
    ProducerMetrics(producer).register(registry)
    with pytest.raises(EnqueueError):
        producer.enqueue("acme", example_events()[1])
    producer.close()
    m = read(registry)
    assert m[("eventfwd_producer_enqueue_duration_seconds_count", (("outcome", "error"),))] == 1
    assert m[("eventfwd_producer_enqueued_events_total", (("outcome", "error"),))] == 1


def test_with_a_spool_its_size_and_oldest_batch_are_served(tmp_path: Path) -> None:
    settings = Settings(redis_url="redis://127.0.0.1:1/0", spool_dir=str(tmp_path / "spool"))
    registry = CollectorRegistry()
    producer = EventProducer(settings=settings)
    ProducerMetrics(producer).register(registry)
    producer.enqueue_many("acme", example_events()[1:3])  # Redis is down: spooled
    m = read(registry)
    producer.close()
    assert m[("eventfwd_producer_enqueued_events_total", (("outcome", "ok"),))] == 2
    assert m[("eventfwd_producer_spool_events", (("state", "ready"),))] == 2
    assert m[("eventfwd_producer_spool_bytes", ())] > 0
    assert m[("eventfwd_producer_spool_limit_bytes", ())] == settings.spool_max_mb * 1024 * 1024
    assert m[("eventfwd_producer_spool_oldest_timestamp_seconds", ())] > 1.7e9
    served = {name for name, _ in m}
    for name in FAMILIES:
        assert any(s == name or s.startswith(name + "_") for s in served), name
