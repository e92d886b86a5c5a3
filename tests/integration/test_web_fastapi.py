"""The FastAPI example (`examples/fastapi/app.py`) through Starlette's TestClient, real Redis."""

from __future__ import annotations

import importlib.util
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from eventfwd.core.settings import Settings
from eventfwd.devkit.samples import sample_events
from tests.conftest import example_events
from tests.support.redis_server import RedisServer
from tests.support.stack import wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"


def make_app(settings: Settings) -> FastAPI:
    path = ROOT / "examples/fastapi/app.py"
    spec = importlib.util.spec_from_file_location("example_fastapi_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app: FastAPI = module.create_app(settings)
    return app


def test_a_valid_event_is_accepted_with_202_and_delivered_with_the_requests_device(
    make_stack: Any, sink: Any
) -> None:
    stack = make_stack()
    stack.worker()
    event = example_events()[6]
    with TestClient(make_app(stack.settings())) as client:
        answer = client.post(
            "/events/acme", json=event, headers={"User-Agent": UA, "Accept-Language": "ja"}
        )
    assert answer.status_code == 202
    assert answer.json() == {"id": event["id"]}
    wait_for(lambda: len(sink.events()) == 1, 30, what="the delivery")
    delivered = sink.events()[0]["event"]
    assert delivered["id"] == event["id"]
    assert delivered["device"] == {
        **event["device"],
        **{"ua": UA, "os": "windows", "ip": "testclient", "language": "ja"},
    }
    assert sink.stats()["requests"] == 1


def test_an_invalid_event_gets_422_with_every_field_error_and_nothing_is_queued(
    redis_url: str, rclient: redis.Redis
) -> None:
    with TestClient(make_app(Settings(redis_url=redis_url))) as client:
        answer = client.post("/events/acme", json={"event_type": "ADD_TO_CART", "items": [{}]})
        assert answer.status_code == 422
        errors = answer.json()["errors"]
        assert {e["path"] for e in errors} >= {"timestamp", "channel_type", "items.0"}
        assert all(set(e) == {"path", "rule", "message"} for e in errors)
        assert client.post("/events/a%20b", json=example_events()[0]).status_code == 422
    assert rclient.dbsize() == 0


def test_redis_down_without_a_spool_answers_503_in_bounded_time(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "r").start()
    with TestClient(make_app(Settings(redis_url=server.url))) as client:
        server.stop()
        started = time.monotonic()
        answer = client.post("/events/acme", json=example_events()[0])
        elapsed_s = time.monotonic() - started
    assert answer.status_code == 503
    assert answer.json() == {"error": "events are not being accepted right now, try again"}
    assert elapsed_s < 2.0


def test_redis_stopped_mid_traffic_requests_keep_succeeding_and_each_event_arrives_once(
    make_stack: Any, sink: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    stack = make_stack()
    settings = stack.settings().replace(spool_dir=str(tmp_path / "spool"))
    events = sample_events(30, seed="fastapi")
    for event in events[20:]:
        del event["id"]
    ids: list[str] = []
    slowest_s = 0.0
    with TestClient(make_app(settings)) as client:
        try:
            for n, event in enumerate(events):
                if n == 10:
                    redis_server.stop()
                started = time.monotonic()
                answer = client.post("/events/acme", json=event)
                slowest_s = max(slowest_s, time.monotonic() - started)
                assert answer.status_code == 202, answer.json()
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


def test_a_lone_surrogate_key_gets_422_with_a_field_path_not_500(
    redis_url: str, rclient: redis.Redis
) -> None:
    body = (
        b'{"event_type": "HOME", "timestamp": "%d", "channel_type": "SITE", "user_id": "u",'
        b' "\\ud800x": 1}' % (int(time.time() * 1000) - 1000)
    )
    with TestClient(make_app(Settings(redis_url=redis_url))) as client:
        answer = client.post(
            "/events/acme", content=body, headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == 422, answer.text
    errors = answer.json()["errors"]
    assert [(e["path"], e["rule"]) for e in errors] == [("\\ud800x", "encoding")]
    assert rclient.dbsize() == 0


def readme_app(settings: Settings) -> FastAPI:
    """The FastAPI snippet of docs/integrate.md, as written there (with settings, not the env)."""
    readme = (ROOT / "docs" / "integrate.md").read_text()
    start = readme.index("**FastAPI**")
    code = readme[start:].split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace("lifespan=eventfwd_lifespan", "lifespan=lifespan_with(settings)")
    namespace: dict[str, Any] = {"settings": settings}
    exec("from producers.fastapi import lifespan_with\n" + code, namespace)
    app: FastAPI = namespace["app"]
    return app


def test_the_readme_snippet_authenticates_limits_the_body_and_refuses_bad_json(
    redis_url: str, rclient: redis.Redis
) -> None:
    settings = Settings(redis_url=redis_url, allowed_platforms=frozenset({"acme-us"}))
    auth = {"Authorization": "Bearer long-random-token-of-shop-web"}
    event = example_events()[0]
    with TestClient(readme_app(settings)) as client:
        assert client.post("/events/acme-us", json=event).status_code == 401
        assert client.post("/events/other", json=event, headers=auth).status_code == 422
        bad = client.post("/events/acme-us", content=b"{not json", headers=auth)
        assert bad.status_code == 422, bad.text
        huge = b'{"x": "' + b"a" * (300 * 1024) + b'"}'
        assert client.post("/events/acme-us", content=huge, headers=auth).status_code == 413
        assert rclient.dbsize() == 0
        ok = client.post("/events/acme-us", json=event, headers=auth)
        assert ok.status_code == 202, ok.text
        assert ok.json()["id"] != event["id"]  # scoped to the caller
