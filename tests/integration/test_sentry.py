"""Sentry end to end: real worker and beat processes report to a fake Sentry ingest on loopback.

The fake ingest is an HTTP server that keeps every envelope it is sent (DSN
`http://publickey@127.0.0.1:PORT/1`); the in-process test uses a capturing `Transport` instead.
Every test counts the Sentry events it expects, and the sink's requests.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
import sentry_sdk
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.exceptions import Ignore, Reject, Retry

from eventfwd.core.settings import Settings
from producers import EventProducer
from tests.conftest import example_events
from tests.support.sentry import CaptureTransport
from tests.support.stack import Proc, Stack, wait_for
from worker.observability import FILTERED, init_sentry

pytestmark = pytest.mark.integration
PLATFORM = "acme"
API_KEY = b"test-key"  # what base_env configures and the sink accepts


def parse_envelope(data: bytes) -> list[tuple[dict[str, Any], bytes]]:
    """Split an envelope into (item header, payload) pairs; `length` is honoured when given."""
    _header, _, rest = data.partition(b"\n")
    items = []
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        header = json.loads(line)
        if "length" in header:
            payload, rest = rest[: header["length"]], rest[header["length"] :]
            rest = rest.removeprefix(b"\n")
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((header, payload))
    return items


class SentryIngest:
    """A stand-in for Sentry's envelope endpoint that records what it receives."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()
        ingest = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = self.headers.get("Content-Encoding", "")
                assert encoding in ("", "gzip"), f"unexpected Content-Encoding {encoding}"
                if encoding == "gzip":
                    body = gzip.decompress(body)
                with ingest._lock:
                    ingest.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self._server.server_address[1]}/1"

    def raw(self) -> bytes:
        with self._lock:
            return b"\n".join(self.bodies)

    def items(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            bodies = list(self.bodies)
        return [
            json.loads(payload)
            for body in bodies
            for header, payload in parse_envelope(body)
            if header.get("type") == kind
        ]

    def events(self) -> list[dict[str, Any]]:
        return self.items("event")


@pytest.fixture
def ingest() -> Iterator[SentryIngest]:
    server = SentryIngest()
    server._thread.start()
    yield server
    server._server.shutdown()
    server._server.server_close()


def dead_letter(rclient: redis.Redis, event_id: str) -> bool:
    return rclient.hget(f"eventfwd:ev:{event_id}", "state") == "dead"


def ready(proc: Proc) -> bool:
    return " ready." in proc.log()


def fresh(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "id": str(uuid.uuid4())}


def identifiers(wire: dict[str, Any]) -> list[bytes]:
    device = wire.get("device") or {}
    values = [wire.get("user_id"), wire.get("custom_id"), device.get("persistent_id")]
    return [v.encode() for v in [*values, device.get("ua")] if v]


def test_dead_letters_are_grouped_warnings_retries_are_silent_and_pump_checks_in(
    make_stack: Callable[[], Stack], sink: Any, rclient: redis.Redis, ingest: SentryIngest
) -> None:
    env = {"SENTRY_DSN": ingest.dsn, "SENTRY_ENVIRONMENT": "eventfwd-test"}
    stack = make_stack()
    worker = stack.worker(name="w1", concurrency=2, **env)
    wait_for(lambda: ready(worker), 20, what="the worker")
    stack.beat(**env)  # after the worker, so the first (sampled) pump is consumed in time
    producer = EventProducer(settings=stack.settings())
    home = example_events()[0]  # carries user_id, persistent_id and ua
    sent_identifiers = identifiers(producer.validate(home).wire)
    assert len(sent_identifiers) == 3

    sink.add_fault({"fault": 400, "count": 3, "message": "missing page_id"})
    refused = producer.enqueue_many(PLATFORM, [fresh(home) for _ in range(3)])
    wait_for(lambda: all(dead_letter(rclient, i) for i in refused), 30, what="3 dead letters")
    wait_for(lambda: len(ingest.events()) == 3, 10, what="3 Sentry events")

    # Moloco echoing an identifier and the key in its message: both are scrubbed.
    user_id = sent_identifiers[0].decode()
    sink.add_fault({"fault": 422, "count": 1, "message": f"bad user_id={user_id} key test-key"})
    echoed = producer.enqueue(PLATFORM, fresh(home))
    wait_for(lambda: dead_letter(rclient, echoed), 30, what="the 422 dead letter")

    sink.add_fault({"fault": 503, "count": 1})
    retried = producer.enqueue(PLATFORM, fresh(home))
    wait_for(lambda: retried in [e["event"]["id"] for e in sink.events()], 30, what="the retry")

    def pump_checkins() -> list[dict[str, Any]]:
        return [c for c in ingest.items("check_in") if c["monitor_slug"] == "eventfwd-pump"]

    wait_for(lambda: len(pump_checkins()) == 2, 20, what="pump in_progress + ok check-ins")
    time.sleep(1.0)  # anything else in flight would arrive now

    assert sink.stats()["requests"] == 3 + 1 + 2
    events = ingest.events()
    assert len(events) == 4  # 3 + 1 dead letters; the retried 503 made none
    grouped = [e for e in events if e["tags"]["eventfwd.status"] == "400"]
    assert sorted(e["tags"]["eventfwd.event_id"] for e in grouped) == sorted(refused)
    assert {tuple(e["fingerprint"]) for e in grouped} == {
        ("eventfwd", "dead-letter", PLATFORM, "rejected", "400")
    }
    for event in grouped:
        assert event["level"] == "warning"
        assert event["environment"] == "eventfwd-test"
        assert event["message"] == f"dead letter: rejected (HTTP 400) on platform {PLATFORM}"
        # reported from the delivery engine's thread: no Celery task's scope leaks into it
        assert "celery_task_id" not in event["tags"]
        assert {k: v for k, v in event["tags"].items() if k != "eventfwd.event_id"} == {
            "eventfwd.component": "worker",
            "eventfwd.platform": PLATFORM,
            "eventfwd.reason": "rejected",
            "eventfwd.status": "400",
            "eventfwd.moloco_message": "missing page_id",
        }
    (scrubbed,) = [e for e in events if e["tags"]["eventfwd.status"] == "422"]
    assert scrubbed["fingerprint"][-1] == "422"
    assert scrubbed["tags"]["eventfwd.moloco_message"] == f"bad user_id={FILTERED} key {FILTERED}"

    raw = ingest.raw()
    assert API_KEY not in raw
    for value in sent_identifiers:
        assert value not in raw
    for event_id in [*refused, echoed]:  # nor any dead letter's stored body
        body = json.loads(str(rclient.hget(f"eventfwd:ev:{event_id}", "body")))
        assert body["user_id"] == user_id
        assert json.dumps(body).encode() not in raw

    started, finished = pump_checkins()
    assert (started["status"], finished["status"]) == ("in_progress", "ok")
    assert started["check_in_id"] == finished["check_in_id"]
    assert started["monitor_config"]["schedule"] == {
        "type": "interval",
        "value": 1,
        "unit": "minute",
    }
    assert [c["monitor_slug"] for c in ingest.items("check_in")] == ["eventfwd-pump"] * 2


def test_a_wrong_platform_key_opens_the_circuit_once_and_a_good_probe_closes_it(
    make_stack: Callable[[], Stack], sink: Any, rclient: redis.Redis, ingest: SentryIngest
) -> None:
    env = {"SENTRY_DSN": ingest.dsn}
    wrong_key = "acme-rotated-9f2c41e7"
    stack = make_stack()
    first = stack.worker(name="w1", concurrency=2, EVENTFWD_PLATFORM_ACME_API_KEY=wrong_key, **env)
    stack.beat(**env)
    wait_for(lambda: ready(first), 20, what="the worker")
    # an override and no allow-list: said at start (a warning, not a Sentry event)
    assert (
        "per-platform settings (EVENTFWD_PLATFORM_ACME_*) without EVENTFWD_ALLOWED_PLATFORMS"
        in first.log()
    )
    ids = EventProducer(settings=stack.settings()).enqueue_many(
        PLATFORM, [fresh(e) for e in example_events()[:4]]
    )
    circuit = f"eventfwd:circuit:{PLATFORM}"
    wait_for(lambda: rclient.hget(circuit, "state") == "open", 30, what="the open circuit")
    wait_for(lambda: len(ingest.events()) == 1, 10, what="the circuit-open event")
    first.stop()
    stack.worker(name="w2", concurrency=2, **env)  # the key is fixed; the next probe succeeds
    wait_for(
        lambda: sorted(e["event"]["id"] for e in sink.events()) == sorted(ids),
        30,
        what="the backlog drained",
    )
    wait_for(lambda: len(ingest.events()) == 2, 10, what="the circuit-closed event")
    time.sleep(0.5)

    opened, closed = ingest.events()
    assert (opened["level"], opened["message"]) == (
        "error",
        f"circuit opened on platform {PLATFORM}: auth",
    )
    assert opened["fingerprint"] == ["eventfwd", "circuit-opened", PLATFORM, "auth"]
    assert opened["tags"]["eventfwd.status"] == "403"
    assert opened["tags"]["eventfwd.moloco_message"] == "invalid api key"
    assert (closed["level"], closed["message"]) == (
        "info",
        f"circuit closed on platform {PLATFORM}",
    )
    assert closed["tags"]["eventfwd.reason"] == "probe_delivered"
    assert len(ingest.events()) == 2  # the "circuit opened" log line did not make a second one
    assert sink.stats()["by_status"].get("200") == len(ids)
    raw = ingest.raw()
    assert wrong_key.encode() not in raw
    assert API_KEY not in raw


def test_an_unexpected_task_exception_is_reported_without_its_arguments(
    make_stack: Callable[[], Stack], redis_url: str, ingest: SentryIngest
) -> None:
    stack = make_stack()
    worker = stack.worker(SENTRY_DSN=ingest.dsn)
    wait_for(lambda: ready(worker), 20, what="the worker")
    user_id = "5e884898da28047151d0e56f8dc6292773603d0d"
    client = Celery("sentry-test", broker=redis_url)
    client.send_task(
        "eventfwd.deliver", kwargs={"event_ids": [], "user_id": user_id}, queue="eventfwd"
    )
    wait_for(lambda: ingest.events(), 20, what="the error event")
    time.sleep(0.5)
    (event,) = ingest.events()
    assert event["level"] == "error"
    assert event["exception"]["values"][-1]["type"] == "TypeError"
    assert event["exception"]["values"][-1]["mechanism"] == {"type": "celery", "handled": False}
    assert event["extra"]["celery-job"]["task_name"] == "eventfwd.deliver"
    assert event["extra"]["celery-job"]["kwargs"] == FILTERED
    assert user_id.encode() not in ingest.raw()


def test_retry_ignore_and_reject_are_control_flow_not_errors(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTRY_DSN", "")  # nothing here may reach a real Sentry
    settings = Settings(
        redis_url=redis_url, moloco_base_url="http://127.0.0.1:9", moloco_api_key="k"
    )
    transport = CaptureTransport()
    assert init_sentry(settings, component="worker", transport=transport, dsn="")
    # The integration wraps `celery.app.trace.build_tracer`. A real worker starts Sentry at
    # worker_init, before Celery imports its consumer; in pytest the consumer module is
    # already imported and holds the unwrapped function, so hand it the wrapped one.
    import celery.app.trace
    import celery.worker.consumer.consumer as consumer

    monkeypatch.setattr(consumer, "build_tracer", celery.app.trace.build_tracer)
    app = Celery("sentry-control-flow", broker="memory://", set_as_current=False)
    app.conf.update(worker_hijack_root_logger=False, task_ignore_result=True)
    app.conf.eventfwd_settings = settings  # for eventfwd's worker_init check, if connected
    ran: list[str] = []

    @app.task(name="t.retry")
    def retry() -> None:
        ran.append("retry")
        raise Retry("try later")

    @app.task(name="t.ignore")
    def ignore() -> None:
        ran.append("ignore")
        raise Ignore()

    @app.task(name="t.reject")
    def reject() -> None:
        ran.append("reject")
        raise Reject("not for us", requeue=False)

    @app.task(name="t.boom")
    def boom() -> None:
        ran.append("boom")
        raise ValueError("boom")

    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            for task in (retry, ignore, reject, boom):
                task.delay()
            wait_for(lambda: transport.events(), 10, what="the ValueError event")
            sentry_sdk.flush()
        assert ran == ["retry", "ignore", "reject", "boom"]
        (event,) = transport.events()
        assert event["exception"]["values"][-1]["type"] == "ValueError"
    finally:
        sentry_sdk.get_global_scope().set_client(None)
