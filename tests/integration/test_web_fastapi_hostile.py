"""FastAPI under hostile input: a lone-surrogate key, and the snippet of docs/integrate.md as
written (authentication, allow-list, body limit, bad JSON), through Starlette's test client."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from eventfwd.core.settings import Settings
from tests.conftest import example_events

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def make_app(settings: Settings) -> FastAPI:
    path = ROOT / "examples/fastapi/app.py"
    spec = importlib.util.spec_from_file_location("example_fastapi_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app: FastAPI = module.create_app(settings)
    return app


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
