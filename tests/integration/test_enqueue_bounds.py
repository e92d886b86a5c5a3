"""Large batches are split into bounded ledger calls; a lost answer does not fail stored events.

(issue #11, item 4)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis

from eventfwd.core.errors import EnqueueError
from eventfwd.core.ledger import ENQUEUE_ROWS_PER_CALL
from eventfwd.core.settings import Settings
from producers import AsyncEventProducer, EventProducer
from tests.conftest import example_events

pytestmark = pytest.mark.integration


def many_events(count: int) -> list[dict[str, Any]]:
    base = example_events()[0]
    return [dict(base, id=str(uuid.uuid4())) for _ in range(count)]


def script_calls(client: redis.Redis) -> int:
    """Script calls that ran (not a NOSCRIPT answer, which redis-py follows with EVAL)."""
    stats = client.info("commandstats")
    ran = 0
    for command in ("eval", "evalsha"):
        row = stats.get(f"cmdstat_{command}", {})
        ran += int(row.get("calls", 0)) - int(row.get("failed_calls", 0))
        ran -= int(row.get("rejected_calls", 0))
    return ran


def stored(client: redis.Redis, ids: list[str]) -> int:
    return sum(int(client.exists(f"eventfwd:ev:{i}")) for i in ids)


def test_a_large_enqueue_many_is_split_into_bounded_script_calls(
    settings: Settings, rclient: redis.Redis
) -> None:
    producer = EventProducer(settings=settings)
    count = ENQUEUE_ROWS_PER_CALL * 4 + 7
    before = script_calls(rclient)
    ids = producer.enqueue_many("acme", many_events(count))
    assert script_calls(rclient) - before == 5
    assert stored(rclient, ids) == count


def lost_answers(run: Callable[..., Any], *, fail_from_call: int, runs: bool) -> Callable[..., Any]:
    """Wrap a script: from call `fail_from_call` on, time out (after running it when `runs`)."""
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] >= fail_from_call:
            if runs:
                run(*args, **kwargs)
            raise redis.TimeoutError("Timeout reading from socket")
        return run(*args, **kwargs)

    return wrapper


def test_a_timeout_after_the_events_were_stored_is_not_reported_as_a_failure(
    settings: Settings, rclient: redis.Redis
) -> None:
    producer = EventProducer(settings=settings)
    scripts = producer._ledger._scripts
    scripts["enqueue"] = lost_answers(scripts["enqueue"], fail_from_call=1, runs=True)
    events = many_events(ENQUEUE_ROWS_PER_CALL + 1)
    ids = producer.enqueue_many("acme", events)
    assert ids == [e["id"] for e in events]
    assert stored(rclient, ids) == len(events)


def test_when_a_later_call_fails_the_error_names_the_events_already_stored(
    settings: Settings, rclient: redis.Redis
) -> None:
    producer = EventProducer(settings=settings)
    scripts = producer._ledger._scripts
    scripts["enqueue"] = lost_answers(scripts["enqueue"], fail_from_call=2, runs=False)
    events = many_events(ENQUEUE_ROWS_PER_CALL * 2)
    with pytest.raises(EnqueueError) as err:
        producer.enqueue_many("acme", events)
    first = [e["id"] for e in events[:ENQUEUE_ROWS_PER_CALL]]
    assert err.value.stored_ids == first
    assert stored(rclient, [e["id"] for e in events]) == ENQUEUE_ROWS_PER_CALL


def test_the_async_producer_splits_and_confirms_the_same_way(
    settings: Settings, rclient: redis.Redis
) -> None:
    events = many_events(ENQUEUE_ROWS_PER_CALL * 2 + 1)

    async def run() -> list[str]:
        async with AsyncEventProducer(settings=settings) as producer:
            real = producer._script

            async def lose_answer(*args: Any, **kwargs: Any) -> Any:
                await real(*args, **kwargs)
                raise redis.TimeoutError("Timeout reading from socket")

            producer._script = lose_answer  # type: ignore[assignment]
            return await producer.enqueue_many("acme", events)

    before = script_calls(rclient)
    ids = asyncio.run(run())
    assert ids == [e["id"] for e in events]
    assert stored(rclient, ids) == len(events)
    assert script_calls(rclient) - before >= 3
