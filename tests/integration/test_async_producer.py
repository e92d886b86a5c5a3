"""`AsyncEventProducer` against a real redis-server: same ledger entries, load, outages."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis

from eventfwd.core.errors import EnqueueError, InvalidEvent
from eventfwd.core.settings import Settings
from eventfwd.devkit.samples import sample_events
from producers import AsyncEventProducer, EventProducer
from tests.conftest import example_events
from tests.support.ready import ready_ids
from tests.support.redis_server import RedisServer
from tests.support.stack import wait_for

pytestmark = pytest.mark.integration


def test_the_async_producer_writes_what_the_thread_producer_writes(
    settings: Settings, rclient: redis.Redis
) -> None:
    event = example_events()[3]

    async def run() -> str:
        async with AsyncEventProducer(settings=settings) as producer:
            return await producer.enqueue("acme", event)

    assert asyncio.run(run()) == event["id"]
    sync = EventProducer(settings=settings)
    assert rclient.hget(f"eventfwd:ev:{event['id']}", "body") == sync.validate(event).body
    assert rclient.hget(f"eventfwd:ev:{event['id']}", "platform") == "acme"
    sync.enqueue("acme", event)  # the same id again: left untouched, not queued twice
    assert len(ready_ids(rclient)) == 1
    sync.close()


def test_an_invalid_event_or_batch_writes_nothing(settings: Settings, rclient: redis.Redis) -> None:
    events = example_events()
    events[2] = dict(events[2], page_id="")

    async def run() -> tuple[InvalidEvent, InvalidEvent]:
        async with AsyncEventProducer(settings=settings) as producer:
            with pytest.raises(InvalidEvent) as one:
                await producer.enqueue("acme", {"event_type": "SEARCH", "channel_type": "SITE"})
            with pytest.raises(InvalidEvent) as many:
                await producer.enqueue_many("acme", events)
            return one.value, many.value

    one, many = asyncio.run(run())
    assert {e.path for e in one.errors} >= {"timestamp", "search_query"}
    assert many.index == 2
    assert rclient.dbsize() == 0


def test_enqueue_many_is_one_round_trip(settings: Settings, rclient: redis.Redis) -> None:
    async def run() -> list[str]:
        async with AsyncEventProducer(settings=settings) as producer:
            await producer.enqueue("acme", example_events()[0])  # connected, script loaded
            rclient.config_resetstat()
            return await producer.enqueue_many("acme", example_events()[1:])

    assert len(asyncio.run(run())) == 7
    calls = {k: v["calls"] for k, v in rclient.info("commandstats").items()}
    assert calls.get("cmdstat_evalsha") == 1


def test_concurrent_load_is_stored_once_each_and_delivered_once_each(
    make_stack: Any, sink: Any, rclient: redis.Redis
) -> None:
    stack = make_stack()
    stack.worker()
    events = sample_events(400, seed="load")

    async def run() -> tuple[list[str], float]:
        async with AsyncEventProducer(settings=stack.settings()) as producer:
            started = time.monotonic()
            ids = await asyncio.gather(*(producer.enqueue("acme", e) for e in events))
            return list(ids), time.monotonic() - started

    ids, elapsed_s = asyncio.run(run())
    assert ids == [e["id"] for e in events]
    assert elapsed_s < 10
    assert rclient.hget("eventfwd:stats", "enqueued") == "400"
    wait_for(lambda: len(sink.events(limit=500)) >= 400, 60, what="400 deliveries")
    time.sleep(0.3)
    counts = Counter(e["event"]["id"] for e in sink.events(limit=500))
    assert set(counts) == set(ids) and max(counts.values()) == 1
    assert sink.stats()["requests"] == 400


def test_redis_down_without_a_spool_raises_enqueue_error_within_about_a_second(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path / "r").start()

    async def run() -> float:
        async with AsyncEventProducer(settings=Settings(redis_url=server.url)) as producer:
            await producer.enqueue("acme", example_events()[0])
            server.kill()
            started = time.monotonic()
            with pytest.raises(EnqueueError, match="unreachable"):
                await producer.enqueue("acme", example_events()[1])
            return time.monotonic() - started

    assert asyncio.run(run()) < 2.0


def test_an_outage_under_concurrent_load_spools_every_request_and_drains_when_back(
    redis_server: RedisServer, redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    settings = Settings(redis_url=redis_url, spool_dir=str(tmp_path / "spool"))
    events = sample_events(150, seed="outage")

    async def run() -> tuple[list[str], float]:
        producer = AsyncEventProducer(settings=settings)
        await producer.enqueue("acme", events[0])
        redis_server.stop()
        try:
            started = time.monotonic()
            ids = await asyncio.gather(*(producer.enqueue("acme", e) for e in events[1:]))
            elapsed_s = time.monotonic() - started
            status = producer.spool_status()
            assert status is not None and status.ready_events == len(events) - 1
        finally:
            redis_server.start()
        await asyncio.to_thread(
            wait_for,
            lambda: all(rclient.exists(f"eventfwd:ev:{i}") for i in ids),
            10,
            what="the drain",
        )
        await producer.aclose()
        return [events[0]["id"], *ids], elapsed_s

    ids, elapsed_s = asyncio.run(run())
    assert ids == [e["id"] for e in events]
    assert elapsed_s < 3.0, "no request may wait long for a Redis that is down"
    assert len(ready_ids(rclient)) == len(events)
