"""The producer against a real redis-server: nothing half-written, bounded when Redis is away."""

from __future__ import annotations

import time

import pytest
import redis

from eventfwd.core.errors import EnqueueError, InvalidEvent
from eventfwd.core.settings import Settings
from producers import EventProducer
from tests.conftest import example_events
from tests.support.ready import ready_ids
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration


def test_enqueue_returns_the_callers_id_or_a_minted_one(
    settings: Settings, rclient: redis.Redis
) -> None:
    producer = EventProducer(settings=settings)
    event = example_events()[0]
    assert producer.enqueue("acme", event) == event["id"]
    minted = producer.enqueue("acme", {k: v for k, v in event.items() if k != "id"})
    assert minted != event["id"] and len(minted) == 36
    assert rclient.hget(f"eventfwd:ev:{minted}", "platform") == "acme"


def test_an_invalid_event_writes_nothing(settings: Settings, rclient: redis.Redis) -> None:
    producer = EventProducer(settings=settings)
    with pytest.raises(InvalidEvent) as info:
        producer.enqueue("acme", {"event_type": "SEARCH", "channel_type": "SITE"})
    assert {e.path for e in info.value.errors} >= {"timestamp", "search_query"}
    assert rclient.dbsize() == 0


def test_one_invalid_event_in_a_batch_stops_the_whole_batch(
    settings: Settings, rclient: redis.Redis
) -> None:
    events = example_events()
    events[5] = dict(events[5], items=[])
    with pytest.raises(InvalidEvent) as info:
        EventProducer(settings=settings).enqueue_many("acme", events)
    assert info.value.index == 5
    assert "event #5" in str(info.value)
    assert rclient.dbsize() == 0


@pytest.mark.parametrize("platform", ["", "a/b", "x y", "..", 7])
def test_a_bad_platform_id_is_refused_before_anything_is_written(
    settings: Settings, rclient: redis.Redis, platform: object
) -> None:
    with pytest.raises(InvalidEvent) as info:
        EventProducer(settings=settings).enqueue(platform, example_events()[0])  # type: ignore[arg-type]
    assert info.value.errors[0].path == "platform_id"
    assert rclient.dbsize() == 0


def test_enqueue_many_is_one_round_trip(settings: Settings, rclient: redis.Redis) -> None:
    producer = EventProducer(settings=settings)
    producer.enqueue("acme", example_events()[0])  # scripts loaded, connection made
    rclient.config_resetstat()
    producer.enqueue_many("acme", example_events()[1:])
    calls = {k: v["calls"] for k, v in rclient.info("commandstats").items()}
    assert calls.get("cmdstat_evalsha") == 1
    assert "cmdstat_eval" not in calls and "cmdstat_script|load" not in calls


def test_redis_unreachable_raises_enqueue_error_within_about_a_second(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = RedisServer(tmp_path / "r").start()
    producer = EventProducer(settings=Settings(redis_url=server.url))
    producer.enqueue("acme", example_events()[0])
    server.kill()
    started = time.monotonic()
    with pytest.raises(EnqueueError, match="unreachable"):
        producer.enqueue("acme", example_events()[1])
    assert time.monotonic() - started < 2.0


def test_an_enqueued_event_survives_a_redis_crash(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = RedisServer(tmp_path / "r").start()
    try:
        ids = EventProducer(settings=Settings(redis_url=server.url)).enqueue_many(
            "acme", example_events()
        )
        server.kill()  # SIGKILL right after enqueue() returned
        server.start()  # replays the AOF
        client = redis.Redis.from_url(server.url, decode_responses=True)
        assert all(client.hget(f"eventfwd:ev:{i}", "state") == "ready" for i in ids)
        assert sorted(ready_ids(client)) == sorted(ids)
    finally:
        server.stop()  # also when an assertion failed: never leave a redis-server behind
