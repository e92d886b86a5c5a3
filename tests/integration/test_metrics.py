"""The Prometheus endpoint, scraped over HTTP and read with prometheus-client's own parser."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import redis
from prometheus_client import start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from eventfwd.cli.metrics import registry_for
from eventfwd.core.keys import Keys
from eventfwd.core.latency import E2E_BOUNDS_MS, RTT_BOUNDS_MS, bucket_index, e2e_field, rtt_field
from eventfwd.core.ledger import Delivery, Ledger
from eventfwd.core.settings import Settings
from eventfwd.core.vocabulary import RescheduleKind
from eventfwd.ops.metrics import FAMILIES
from producers import EventProducer
from tests.conftest import example_events
from tests.support.dead import dead_record, import_dead, make_dead
from tests.support.ledger import claim_ready
from tests.support.redis_server import free_port
from tests.support.stack import ROOT, wait_for
from worker.heartbeat import record_beat_tick

pytestmark = pytest.mark.integration

ALERTS = ROOT / "deploy" / "alerts.yml"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape_families(url: str) -> list[Metric]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return list(text_string_to_metric_families(response.read().decode()))


def _base(name: str) -> str:
    """The family name the text parser reports: counters lose their _total."""
    return name.removesuffix("_total")


def scrape(url: str) -> Samples:
    samples: Samples = {}
    for family in scrape_families(url):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


@pytest.fixture
def endpoint(settings: Settings) -> Iterator[str]:
    client = redis.Redis.from_url(settings.redis_url)
    server, thread = start_http_server(
        0, addr="127.0.0.1", registry=registry_for(client, settings, cache_s=0)
    )
    yield f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def fleet(settings: Settings, rclient: redis.Redis) -> None:
    """Deliveries, a throttle, dead letters of two reasons, a backlog and an open circuit."""
    make_dead(settings, "acme", "rejected", "400", "missing page_id")
    import_dead(settings, dead_record("other", "retries_exhausted", 503))
    EventProducer(settings=settings).enqueue_many("acme", example_events()[1:4])
    ledger = Ledger(redis.Redis.from_url(settings.redis_url), settings)
    rclient.hincrby("eventfwd:pstats:acme", "delivered", 7)
    rclient.hincrby("eventfwd:pstats:acme", "throttled", 2)
    rclient.hincrby("eventfwd:pstats:acme", "something_new", 3)
    opened = int(time.time() * 1000) - 120_000
    rclient.hset(
        "eventfwd:circuit:other", mapping={"state": "open", "reason": "auth", "opened_ms": opened}
    )
    rclient.hset("eventfwd:rate:acme", mapping={"rate": 7.5, "rate_ms": int(time.time() * 1000)})
    record_beat_tick(ledger.client, Keys("eventfwd"), now_ms=1_700_000_000_000)


def test_the_endpoint_serves_fleet_counters_gauges_and_per_platform_state(
    endpoint: str, fleet: None
) -> None:
    m = scrape(endpoint)
    acme, other = (("platform", "acme"),), (("platform", "other"),)
    assert m[("eventfwd_up", ())] == 1
    assert (
        m[
            (
                "eventfwd_build_info",
                (("python", platform.python_version()), ("version", version("eventfwd"))),
            )
        ]
        == 1
    )
    assert m[("eventfwd_events_enqueued_total", acme)] == 4
    assert m[("eventfwd_events_delivered_total", acme)] == 7
    assert m[("eventfwd_moloco_throttled_total", acme)] == 2
    assert m[("eventfwd_events_parked_total", acme)] == 0
    assert m[("eventfwd_dead_lettered_total", (*acme, ("reason", "rejected")))] == 1
    assert m[("eventfwd_dead_letters_imported_total", ())] == 1
    assert m[("eventfwd_circuit_transitions_total", (("to", "open"),))] == 0
    assert not any(name.endswith("_by_reason") or "counter" in dict(labels) for name, labels in m)
    assert m[("eventfwd_backlog_events", (*acme, ("state", "ready")))] == 3
    assert m[("eventfwd_backlog_events", (*acme, ("state", "in_flight")))] == 0
    oldest = m[("eventfwd_oldest_pending_event_timestamp_seconds", acme)]
    assert time.time() - 60 < oldest <= time.time()
    assert ("eventfwd_oldest_pending_event_timestamp_seconds", other) not in m
    assert m[("eventfwd_max_event_age_seconds", ())] == 7 * 86400
    assert (
        m[("eventfwd_dead_letters", (("platform", "other"), ("reason", "retries_exhausted")))] == 1
    )
    assert sum(v for (name, _), v in m.items() if name == "eventfwd_dead_letters") == 2
    assert m[("eventfwd_circuit_open", other)] == 1
    assert m[("eventfwd_circuit_open", acme)] == 0
    opened = m[("eventfwd_circuit_opened_timestamp_seconds", other)]
    assert 119 < time.time() - opened < 200
    assert ("eventfwd_circuit_opened_timestamp_seconds", acme) not in m
    assert m[("eventfwd_in_flight_cap", acme)] > 0
    assert 7.5 <= m[("eventfwd_send_rate_per_second", acme)] < 8
    assert m[("eventfwd_send_rate_limit_per_second", acme)] == 30
    assert m[("eventfwd_platform_paused", acme)] == 0
    assert ("eventfwd_queue_messages", (("queue", "eventfwd"),)) in m  # wake-ups only
    assert m[("eventfwd_beat_last_tick_timestamp_seconds", ())] == 1_700_000_000
    assert m[("eventfwd_dead_letters_trimmed_total", (("exported", "false"),))] == 0


def test_every_declared_family_is_served_and_nothing_else(endpoint: str, fleet: None) -> None:
    served = {family.name for family in scrape_families(endpoint)}
    declared = {_base(name) for name in FAMILIES}
    assert served == declared


def test_latency_histograms_are_read_from_redis_per_platform_and_status_class(
    endpoint: str, settings: Settings, rclient: redis.Redis
) -> None:
    EventProducer(settings=settings).enqueue_many("shop", example_events()[1:2])
    observe(rclient, "shop", rtt_ms=40, status="200", e2e_ms=1500)
    observe(rclient, "shop", rtt_ms=700, status="200", e2e_ms=90_000)
    observe(rclient, "shop", rtt_ms=10_001, status=None, e2e_ms=None)
    m = scrape(endpoint)
    ok = (("platform", "shop"), ("status_class", "2xx"))
    rtt = "eventfwd_moloco_request_duration_seconds"
    assert m[(f"{rtt}_bucket", (("le", "0.05"), *ok))] == 1
    assert m[(f"{rtt}_bucket", (("le", "1"), *ok))] == 2
    assert m[(f"{rtt}_bucket", (("le", "+Inf"), *ok))] == 2
    assert m[(f"{rtt}_count", ok)] == 2
    assert m[(f"{rtt}_sum", ok)] == pytest.approx(0.74)
    none = (("platform", "shop"), ("status_class", "none"))
    assert m[(f"{rtt}_bucket", (("le", "10"), *none))] == 0
    assert m[(f"{rtt}_bucket", (("le", "30"), *none))] == 1
    e2e = "eventfwd_delivery_delay_seconds"
    assert m[(f"{e2e}_bucket", (("le", "2.5"), ("platform", "shop")))] == 1
    assert m[(f"{e2e}_bucket", (("le", "300"), ("platform", "shop")))] == 2
    assert m[(f"{e2e}_sum", (("platform", "shop"),))] == pytest.approx(91.5)


def observe(
    client: redis.Redis, platform_id: str, *, rtt_ms: int, status: str | None, e2e_ms: int | None
) -> None:
    """What the ledger's scripts add to {p}:hist:{platform} for one attempt (core/latency.py)."""
    key = Keys("eventfwd").hist(platform_id)
    status_class = f"{status[0]}xx" if status else "none"
    i = bucket_index(rtt_ms, RTT_BOUNDS_MS)
    client.hincrby(key, rtt_field(status_class, i), 1)
    client.hincrby(key, rtt_field(status_class, "sum_ms"), rtt_ms)
    if e2e_ms is not None:
        client.hincrby(key, e2e_field(bucket_index(e2e_ms, E2E_BOUNDS_MS)), 1)
        client.hincrby(key, e2e_field("sum_ms"), e2e_ms)


def test_every_metric_the_alert_rules_use_is_served(endpoint: str, fleet: None) -> None:
    served = {family.name for family in scrape_families(endpoint)}
    used = {_base(n) for n in re.findall(r"\beventfwd_[a-z_]+", ALERTS.read_text())}
    assert used and used <= served, used - served


def test_the_alert_rules_have_an_expression_and_a_summary_each() -> None:
    blocks = re.split(r"\n      - alert: ", ALERTS.read_text())[1:]
    names = [block.split("\n", 1)[0] for block in blocks]
    assert set(names) >= {
        "EventfwdDeadLettersGrowing",
        "EventfwdCircuitOpen",
        "EventfwdOldestPendingNearMaxAge",
        "EventfwdBacklogGrowing",
    }
    for block in blocks:
        assert "\n        expr: " in block and "\n          summary: " in block, block


def test_the_endpoint_says_redis_is_down_instead_of_failing(settings: Settings) -> None:
    dead = settings.replace(redis_url="redis://127.0.0.1:1/0")
    client = redis.Redis.from_url(dead.redis_url, socket_connect_timeout=0.5)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry_for(client, dead))
    try:
        m = scrape(f"http://127.0.0.1:{server.server_port}/metrics")
    finally:
        server.shutdown()
        thread.join(timeout=5)
    assert m[("eventfwd_up", ())] == 0
    assert {name for name, _labels in m} == {"eventfwd_up", "eventfwd_build_info"}


def test_eventfwd_metrics_command_serves_until_stopped(
    redis_url: str, settings: Settings, fleet: None, tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTFWD_")}
    env["EVENTFWD_REDIS_URL"] = redis_url
    log = (tmp_path / "metrics.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from eventfwd.cli.main import main; main()",
         "metrics", "--port", str(port), "--host", "127.0.0.1"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        m = wait_for(lambda: _try_scrape(url), 20, interval_s=0.2, what="the metrics endpoint")
        assert m[("eventfwd_dead_letters", (("platform", "acme"), ("reason", "rejected")))] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
    assert (
        f"serving metrics at http://127.0.0.1:{port}/metrics"
        in (tmp_path / "metrics.log").read_text()
    )


def _try_scrape(url: str) -> Samples | None:
    try:
        return scrape(url)
    except OSError:
        return None


def test_delivered_failed_and_dead_are_served_per_platform_and_status_class(
    endpoint: str, settings: Settings
) -> None:
    make_dead(settings, "acme", "rejected", "400", "missing page_id")
    ledger = Ledger(redis.Redis.from_url(settings.redis_url), settings)
    ids = EventProducer(settings=settings).enqueue_many("shop", example_events()[1:3])
    claims = claim_ready(ledger, "t")
    assert set(claims) == set(ids)
    ledger.ack([Delivery(ids[0], "t", rtt_ms=20, status=200)])
    ledger.reschedule(
        ids[1], "t", kind=RescheduleKind.TRANSIENT, delay_s=1, status="503", message="", record={}
    )
    m = scrape(endpoint)
    assert m[("eventfwd_events_delivered_total", (("platform", "shop"),))] == 1
    assert m[("eventfwd_events_delivered_total", (("platform", "acme"),))] == 0
    assert (
        m[("eventfwd_delivery_failures_total", (("platform", "shop"), ("status_class", "5xx")))]
        == 1
    )
    assert (
        m[("eventfwd_delivery_failures_total", (("platform", "acme"), ("status_class", "4xx")))]
        == 1
    )
    acme_rejected = (("platform", "acme"), ("reason", "rejected"))
    assert m[("eventfwd_dead_lettered_total", acme_rejected)] == 1
    assert m[("eventfwd_delivery_retries_total", (("platform", "shop"),))] == 1


def test_eventfwd_metrics_listens_on_loopback_unless_told() -> None:
    from eventfwd.cli.metrics import metrics as command

    (host,) = [p for p in command.params if p.name == "host"]
    assert host.default == "127.0.0.1"
