"""The Flask, Django and FastAPI examples (`examples/`) through each framework's test client and a
real Redis: one suite, run against all three, since each must answer and enqueue alike."""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

from eventfwd.core.settings import Settings
from eventfwd.devkit.samples import sample_events
from tests.conftest import example_events
from tests.support.ledger import backlog
from tests.support.redis_server import RedisServer
from tests.support.stack import wait_for

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"
JSON = "application/json"


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any


class Client:
    """What every framework's test client does here: POST a body, read a JSON answer."""

    def __init__(self, post: Callable[[str, str, dict[str, str]], Answer]) -> None:
        self._post = post

    def post(
        self, path: str, event: Any = None, *, raw: str | None = None, **headers: str
    ) -> Answer:
        body = json.dumps(event) if raw is None else raw
        return self._post(path, body, {"content-type": JSON, **headers})


# Start an example app on a Redis URL (and a spool directory, or none); yield a client to it.
Opener = Callable[[str, Path | None], AbstractContextManager[Client]]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def flask_client(redis_url: str, spool_dir: Path | None) -> Iterator[Client]:
    config: dict[str, Any] = {"EVENTFWD_REDIS_URL": redis_url}
    if spool_dir is not None:
        config["EVENTFWD_SPOOL_DIR"] = str(spool_dir)
    app = _load("example_flask_app", EXAMPLES / "flask/app.py").create_app(config)
    app.testing = True
    test_client = app.test_client()

    def post(path: str, body: str, headers: dict[str, str]) -> Answer:
        answer = test_client.post(path, data=body, headers=headers)
        return Answer(answer.status_code, answer.get_json(silent=True))

    try:
        yield Client(post)
    finally:
        app.extensions["eventfwd"].close()


@contextmanager
def fastapi_client(redis_url: str, spool_dir: Path | None) -> Iterator[Client]:
    from fastapi.testclient import TestClient

    settings = Settings(redis_url=redis_url, spool_dir=str(spool_dir) if spool_dir else None)
    app = _load("example_fastapi_app", EXAMPLES / "fastapi/app.py").create_app(settings)
    with TestClient(app) as test_client:

        def post(path: str, body: str, headers: dict[str, str]) -> Answer:
            answer = test_client.post(path, content=body, headers=headers)
            return Answer(answer.status_code, answer.json())

        yield Client(post)


def _django_project() -> None:
    """Django set up with the example's `shop.settings`, once per process as Django wants.

    `settings.configure()` rather than DJANGO_SETTINGS_MODULE: that variable would reach the
    Celery workers the tests start, and Celery would try to set up Django there.
    """
    import django
    from django.conf import settings as django_settings

    if django_settings.configured:
        return
    sys.path.insert(0, str(EXAMPLES / "django"))
    try:
        example = importlib.import_module("shop.settings")
        django_settings.configure(
            **{name: getattr(example, name) for name in dir(example) if name.isupper()}
        )
        django.setup()
        importlib.import_module("shop.urls")  # while the example is on the path
        importlib.import_module("shop.views")
    finally:
        sys.path.remove(str(EXAMPLES / "django"))


@contextmanager
def django_client(redis_url: str, spool_dir: Path | None) -> Iterator[Client]:
    from django.test import Client as DjangoClient
    from django.test import override_settings

    from producers.django import reset_producer

    _django_project()
    overrides: dict[str, Any] = {"EVENTFWD_REDIS_URL": redis_url}
    if spool_dir is not None:
        overrides["EVENTFWD_SPOOL_DIR"] = str(spool_dir)
    test_client = DjangoClient()

    def post(path: str, body: str, headers: dict[str, str]) -> Answer:
        content_type = headers.pop("content-type")
        answer = test_client.post(path, body, content_type=content_type, headers=headers)
        return Answer(answer.status_code, json.loads(answer.content) if answer.content else None)

    reset_producer()
    try:
        with override_settings(**overrides):
            yield Client(post)
    finally:
        reset_producer()


OPENERS: dict[str, Opener] = {
    "flask": flask_client,
    "django": django_client,
    "fastapi": fastapi_client,
}
# The client address each test client reports.
CLIENT_IP = {"flask": "127.0.0.1", "django": "127.0.0.1", "fastapi": "testclient"}


@pytest.fixture(params=sorted(OPENERS))
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_app(framework: str) -> Opener:
    return OPENERS[framework]


def test_a_valid_event_is_accepted_with_202_and_delivered_with_the_requests_device(
    framework: str, open_app: Opener, make_stack: Any, sink: Any
) -> None:
    stack = make_stack()
    stack.worker()
    event = dict(example_events()[4], device={"persistent_id": "d-1", "model": "iPhone15,2"})
    with open_app(stack.redis_url, None) as client:
        answer = client.post(
            "/events/acme", event, **{"user-agent": UA, "accept-language": "fr-CH, fr;q=0.9"}
        )
    assert (answer.status, answer.body) == (202, {"id": event["id"]})
    wait_for(lambda: len(sink.events()) == 1, 30, what="the delivery")
    delivered = sink.events()[0]["event"]
    assert delivered["id"] == event["id"]
    assert delivered["device"] == {  # the event's own fields kept, the request's added
        "persistent_id": "d-1",
        "model": "iPhone15,2",
        "ua": UA,
        "os": "ios",
        "ip": CLIENT_IP[framework],
        "language": "fr",
    }
    assert sink.stats()["requests"] == 1


def test_an_invalid_event_gets_422_with_every_field_error_and_nothing_is_queued(
    open_app: Opener, redis_url: str, rclient: redis.Redis
) -> None:
    with open_app(redis_url, None) as client:
        answer = client.post("/events/acme", {"event_type": "PURCHASE", "serach_query": "x"})
        assert answer.status == 422
        errors = answer.body["errors"]
        assert {e["path"] for e in errors} >= {
            "timestamp",
            "channel_type",
            "items",
            "revenue",
            "serach_query",
        }
        assert all(set(e) == {"path", "rule", "message"} for e in errors)
        assert client.post("/events/acme", raw="{").status == 422
        assert client.post("/events/a%20b", example_events()[0]).status == 422
    assert rclient.dbsize() == 0


def test_redis_down_without_a_spool_answers_503_in_bounded_time(
    open_app: Opener, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "r").start()
    with open_app(server.url, None) as client:
        server.stop()
        started = time.monotonic()
        answer = client.post("/events/acme", example_events()[0])
        elapsed_s = time.monotonic() - started
    assert answer.status == 503
    assert answer.body == {"error": "events are not being accepted right now, try again"}
    assert elapsed_s < 2.0


def test_redis_stopped_mid_traffic_requests_keep_succeeding_and_each_event_arrives_once(
    framework: str, open_app: Opener, make_stack: Any, sink: Any, redis_server: RedisServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    stack = make_stack()
    events = sample_events(30, seed=framework)
    for event in events[20:]:
        del event["id"]  # minted at enqueue (into the spool for these): the id must survive
    ids: list[str] = []
    slowest_s = 0.0
    with open_app(stack.redis_url, tmp_path / "spool") as client:
        try:
            for n, event in enumerate(events):
                if n == 10:
                    redis_server.stop()
                started = time.monotonic()
                answer = client.post("/events/acme", event)
                slowest_s = max(slowest_s, time.monotonic() - started)
                assert answer.status == 202, answer.body
                ids.append(answer.body["id"])
        finally:
            redis_server.start()
        stack.worker()  # the app's spool drains while it is still open
        wait_for(lambda: len(sink.events()) >= len(events), 60, what="every event delivered")
    assert slowest_s < 1.0
    # every ack recorded: nothing is left that a lease could send again
    probe = redis.Redis.from_url(stack.redis_url)
    wait_for(lambda: backlog(probe, "acme") == 0, 10, what="the acks")
    probe.close()
    counts = Counter(e["event"]["id"] for e in sink.events())
    assert set(counts) == set(ids) and max(counts.values()) == 1
    assert sink.stats()["requests"] == len(events)


# -- Django only: its system check and settings.py ----------------------------------------


def _eventfwd_checks() -> list[tuple[str, str]]:
    from django.core.checks import run_checks

    return [(m.id or "", m.msg) for m in run_checks(tags=["eventfwd"])]


def test_the_django_system_check_passes_good_settings_and_names_bad_ones(tmp_path: Path) -> None:
    from django.test import override_settings

    _django_project()
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


def test_django_settings_py_values_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django.test import override_settings

    from producers.django import get_producer, reset_producer

    _django_project()
    monkeypatch.setenv("EVENTFWD_STRICT_FIELDS", "false")
    monkeypatch.setenv("EVENTFWD_KEY_PREFIX", "from-env")
    reset_producer()
    try:
        with override_settings(EVENTFWD_STRICT_FIELDS=True):
            settings = get_producer().settings
    finally:
        reset_producer()
    assert settings.strict_fields is True
    assert settings.key_prefix == "from-env"
