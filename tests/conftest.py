"""Fixtures: a private redis-server, the fake Moloco sink, and real worker/beat processes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from eventfwd.core.settings import Settings
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack, stacks

EXAMPLES = Path(__file__).parent / "fixtures" / "moloco_examples.jsonl"


def example_events() -> list[dict[str, Any]]:
    """Moloco's example bodies, one per event type, with timestamps moved to now."""
    now_ms = int(time.time() * 1000)
    events = [json.loads(line) for line in EXAMPLES.read_text().splitlines() if line.strip()]
    for offset, event in enumerate(events):
        event["timestamp"] = str(now_ms - 1000 + offset)
    return events


@pytest.fixture(scope="session", autouse=True)
def _stop_leftover_redis_servers() -> Iterator[None]:
    """A test that failed before stopping its own redis-server must not leave it running."""
    yield
    RedisServer.stop_all()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A clean database on the suite's own redis-server (restarted if a test killed it)."""
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture
def rclient(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings(redis_url=redis_url, moloco_base_url="http://127.0.0.1:9", moloco_api_key="k")


@pytest.fixture
def sink() -> Iterator[Any]:
    from eventfwd.devkit.sink.server import SinkServer

    server = SinkServer(api_key="test-key", events_kept=100_000)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_stack(
    redis_url: str, sink: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[], Stack]]:
    """Worker and beat processes on the suite's Redis and the test's sink."""
    with stacks(sink.url, tmp_path, request) as make:
        yield lambda: make(redis_url)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    setattr(item, "rep_" + rep.when, rep)
    return rep
