"""The Django example project (`examples/django/`) through Django's test client, real Redis."""

from __future__ import annotations

import importlib
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
import redis
from django.conf import settings as django_settings
from django.core.checks import run_checks
from django.test import Client, override_settings

from eventfwd.devkit.samples import sample_events
from producers.django import get_producer, reset_producer
from tests.conftest import example_events
from tests.support.redis_server import RedisServer
from tests.support.stack import wait_for

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "django"
UA = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0 Mobile"


@pytest.fixture(scope="module", autouse=True)
def example_project() -> Iterator[None]:
    """Django set up with the example's `shop.settings` (once per process, as Django wants).

    `settings.configure()` rather than DJANGO_SETTINGS_MODULE: that variable would reach the
    Celery workers the tests start, and Celery would try to set up Django there.
    """
    sys.path.insert(0, str(EXAMPLE))
    try:
        if not django_settings.configured:
            example = importlib.import_module("shop.settings")
            django_settings.configure(
                **{name: getattr(example, name) for name in dir(example) if name.isupper()}
            )
            django.setup()
        yield
    finally:
        sys.path.remove(str(EXAMPLE))


@pytest.fixture(autouse=True)
def fresh_producer() -> Iterator[None]:
    reset_producer()
    yield
    reset_producer()


def test_a_valid_event_is_accepted_with_202_and_delivered_with_the_requests_device(
    make_stack: Any, sink: Any
) -> None:
    stack = make_stack()
    stack.worker()
    event = dict(example_events()[4], device={"persistent_id": "d-1", "model": "Pixel 8"})
    with override_settings(EVENTFWD_REDIS_URL=stack.redis_url):
        answer = Client().post(
            "/events/acme",
            event,
            content_type="application/json",
            headers={"user-agent": UA, "accept-language": "de-DE,de;q=0.9"},
        )
    assert answer.status_code == 202
    assert answer.json() == {"id": event["id"]}
    wait_for(lambda: len(sink.events()) == 1, 30, what="the delivery")
    delivered = sink.events()[0]["event"]
    assert delivered["id"] == event["id"]
    assert delivered["device"] == {  # the event's own fields kept, the request's added
        "persistent_id": "d-1",
        "model": "Pixel 8",
        "ua": UA,
        "os": "android",
        "ip": "127.0.0.1",
        "language": "de",
    }
    assert sink.stats()["requests"] == 1


def test_an_invalid_event_gets_422_with_every_field_error_and_nothing_is_queued(
    redis_url: str, rclient: redis.Redis
) -> None:
    with override_settings(EVENTFWD_REDIS_URL=redis_url):
        client = Client()
        answer = client.post(
            "/events/acme", {"event_type": "PURCHASE"}, content_type="application/json"
        )
        assert answer.status_code == 422
        errors = answer.json()["errors"]
        assert {e["path"] for e in errors} >= {"timestamp", "channel_type", "items", "revenue"}
        broken = client.post("/events/acme", "{", content_type="application/json")
        assert broken.status_code == 422
        assert client.get("/events/acme").status_code == 405
    assert rclient.dbsize() == 0


def test_redis_stopped_mid_traffic_requests_keep_succeeding_and_each_event_arrives_once(
    make_stack: Any, sink: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    stack = make_stack()
    events = sample_events(30, seed="django")
    for event in events[20:]:
        del event["id"]
    ids: list[str] = []
    slowest_s = 0.0
    with override_settings(EVENTFWD_REDIS_URL=stack.redis_url, EVENTFWD_SPOOL_DIR=tmp_path):
        client = Client()
        try:
            for n, event in enumerate(events):
                if n == 10:
                    redis_server.stop()
                started = time.monotonic()
                answer = client.post("/events/acme", event, content_type="application/json")
                slowest_s = max(slowest_s, time.monotonic() - started)
                assert answer.status_code == 202, answer.content
                ids.append(answer.json()["id"])
        finally:
            redis_server.start()
        stack.worker()
        wait_for(lambda: len(sink.events()) >= len(events), 60, what="every event delivered")
    assert slowest_s < 1.0
    time.sleep(0.5)
    counts = Counter(e["event"]["id"] for e in sink.events())
    assert set(counts) == set(ids) and max(counts.values()) == 1
    assert sink.stats()["requests"] == len(events)


def _eventfwd_checks() -> list[tuple[str, str]]:
    return [(m.id or "", m.msg) for m in run_checks(tags=["eventfwd"])]


def test_the_system_check_passes_good_settings_and_names_bad_ones(tmp_path: Path) -> None:
    with override_settings(EVENTFWD_SPOOL_DIR=tmp_path / "spool", EVENTFWD_HASH_IDENTIFIERS=True):
        assert _eventfwd_checks() == []
    with override_settings(EVENTFWD_MAX_ATTEMPTS="many"):
        ((check_id, message),) = _eventfwd_checks()
        assert check_id == "eventfwd.E001" and "EVENTFWD_MAX_ATTEMPTS" in message
    with override_settings(EVENTFWD_REDIS_ULR="redis://x"):
        ((check_id, message),) = _eventfwd_checks()
        assert check_id == "eventfwd.E001" and "did you mean EVENTFWD_REDIS_URL" in message
    a_file = tmp_path / "file"
    a_file.write_text("")
    with override_settings(EVENTFWD_SPOOL_DIR=a_file / "spool"):
        assert [c for c, _ in _eventfwd_checks()] == ["eventfwd.E002"]


def test_settings_py_values_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTFWD_STRICT_FIELDS", "false")
    monkeypatch.setenv("EVENTFWD_KEY_PREFIX", "from-env")
    with override_settings(EVENTFWD_STRICT_FIELDS=True):
        settings = get_producer().settings
    assert settings.strict_fields is True
    assert settings.key_prefix == "from-env"
