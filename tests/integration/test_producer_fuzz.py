"""The producer under hostile input against a real Redis: a refusal writes nothing (item 7)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventfwd.core.errors import InvalidEvent
from eventfwd.core.settings import Settings
from producers import EventProducer
from tests.unit.test_hostile_fuzz import hostile_events

pytestmark = pytest.mark.integration
platforms = st.one_of(
    st.just("acme"),
    st.sampled_from(["", "..", "a/b", "x y", "acme\n", "é", "a" * 200, "junk"]),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(platform=platforms, events=st.lists(hostile_events(), min_size=1, max_size=3))
def test_a_refused_enqueue_writes_nothing_and_an_accepted_one_is_stored(
    settings: Settings, rclient: redis.Redis, platform: Any, events: list[Any]
) -> None:
    producer = EventProducer(settings=settings.replace(allowed_platforms=frozenset({"acme"})))
    rclient.flushdb()
    try:
        ids = producer.enqueue_many(platform, events)
    except InvalidEvent as exc:
        assert exc.errors and all(e.rule for e in exc.errors)
        assert rclient.dbsize() == 0
    else:
        assert platform == "acme"
        for event_id in ids:
            assert rclient.exists(f"eventfwd:ev:{event_id}")
    finally:
        producer.close()
