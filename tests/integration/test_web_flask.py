"""The Flask example app (`examples/flask/app.py`) through Flask's test client, real Redis."""

from __future__ import annotations

import importlib.util
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis
from flask import Flask

from eventfwd.devkit.samples import sample_events
from tests.conftest import example_events
from tests.support.redis_server import RedisServer
from tests.support.stack import wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "example_flask_app", ROOT / "examples/flask/app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def make_app() -> Iterator[Callable[..., Flask]]:
    apps: list[Flask] = []

    def make(redis_url: str, **config: Any) -> Flask:
        app: Flask = _example().create_app({"EVENTFWD_REDIS_URL": redis_url, **config})
        app.testing = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["eventfwd"].close()


def test_a_valid_event_is_accepted_with_202_and_delivered_with_the_requests_device(
    make_stack: Any, sink: Any, make_app: Callable[..., Flask]
) -> None:
    stack = make_stack()
    stack.worker()
    client = make_app(stack.redis_url).test_client()
    event = example_events()[2]
    answer = client.post(
        "/events/acme",
        json=event,
        headers={"User-Agent": UA, "Accept-Language": "fr-CH, fr;q=0.9, en;q=0.8"},
    )
    assert answer.status_code == 202
    assert answer.get_json() == {"id": event["id"]}
    wait_for(lambda: len(sink.events()) == 1, 30, what="the delivery")
    delivered = sink.events()[0]["event"]
    assert delivered["id"] == event["id"]
    assert delivered["device"] == {"ua": UA, "os": "ios", "ip": "127.0.0.1", "language": "fr"}
    assert sink.stats()["requests"] == 1


def test_an_invalid_event_gets_422_with_every_field_error_and_nothing_is_queued(
    redis_url: str, rclient: redis.Redis, make_app: Callable[..., Flask]
) -> None:
    client = make_app(redis_url).test_client()
    answer = client.post("/events/acme", json={"event_type": "SEARCH", "serach_query": "x"})
    assert answer.status_code == 422
    errors = answer.get_json()["errors"]
    assert {e["path"] for e in errors} >= {"timestamp", "channel_type", "serach_query"}
    assert all(set(e) == {"path", "rule", "message"} for e in errors)
    not_json = client.post("/events/acme", data="nope", content_type="text/plain")
    assert not_json.status_code == 422
    assert not_json.get_json()["errors"][0]["rule"] == "type"
    assert client.post("/events/a b", json=example_events()[0]).status_code == 422
    assert rclient.dbsize() == 0


def test_redis_down_without_a_spool_answers_503_in_bounded_time(
    tmp_path: Path, make_app: Callable[..., Flask]
) -> None:
    server = RedisServer(tmp_path / "r").start()
    client = make_app(server.url).test_client()
    server.stop()
    started = time.monotonic()
    answer = client.post("/events/acme", json=example_events()[0])
    assert answer.status_code == 503
    assert time.monotonic() - started < 2.0


def test_redis_stopped_mid_traffic_requests_keep_succeeding_and_each_event_arrives_once(
    make_stack: Any,
    sink: Any,
    redis_server: RedisServer,
    tmp_path: Path,
    make_app: Callable[..., Flask],
) -> None:
    stack = make_stack()
    app = make_app(stack.redis_url, EVENTFWD_SPOOL_DIR=tmp_path / "spool")
    client = app.test_client()
    events = sample_events(30, seed="flask")
    for event in events[20:]:
        del event["id"]  # minted at enqueue (into the spool for these): the id must survive
    ids: list[str] = []
    slowest_s = 0.0
    for n, event in enumerate(events):
        if n == 10:
            redis_server.stop()
        started = time.monotonic()
        answer = client.post("/events/acme", json=event)
        slowest_s = max(slowest_s, time.monotonic() - started)
        assert answer.status_code == 202, answer.get_json()
        ids.append(answer.get_json()["id"])
    redis_server.start()
    assert slowest_s < 1.0
    stack.worker()
    wait_for(lambda: len(sink.events()) >= len(events), 60, what="every event delivered")
    time.sleep(0.5)
    counts = Counter(e["event"]["id"] for e in sink.events())
    assert set(counts) == set(ids) and max(counts.values()) == 1
    assert sink.stats()["requests"] == len(events)
