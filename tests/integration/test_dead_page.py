"""The console's dead-letter pages: newest first, every entry once, stable under changes."""

from __future__ import annotations

import pytest
import redis

from eventfwd.core.keys import Keys
from eventfwd.core.records import DeadFilter, Records
from eventfwd.ops.deadpage import dead_page

pytestmark = pytest.mark.integration


def fill(client: redis.Redis, n: int, *, same_ms_every: int = 3) -> None:
    """n dead letters, `same_ms_every` sharing each dead-at time; one in four 'missing page_id'."""
    pipe = client.pipeline()
    for i in range(n):
        event_id, dead_ms = f"d{i:04}", 1_000 + i // same_ms_every
        message = "missing page_id" if i % 4 == 0 else "unavailable"
        pipe.hset(
            f"eventfwd:ev:{event_id}",
            mapping={"state": "dead", "platform": "acme", "reason": "rejected",
                     "last_status": "400", "last_message": message, "dead_ms": dead_ms,
                     "body": "{}"},
        )  # fmt: skip
        pipe.zadd("eventfwd:dead", {event_id: dead_ms})
    pipe.execute()


def walk(records: Records, flt: DeadFilter | None = None, size: int = 7) -> list[str]:
    seen, cursor = [], None
    while True:
        page = dead_page(records, flt, cursor=cursor, size=size, scan_limit=10)
        seen += [e.id for e in page.rows]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


def test_pages_walk_every_dead_letter_once_newest_first(rclient: redis.Redis) -> None:
    fill(rclient, 50)
    records = Records(rclient, Keys("eventfwd"))
    expected = rclient.zrevrange("eventfwd:dead", 0, -1)
    assert walk(records) == expected


def test_a_filtered_walk_finds_exactly_the_matches_across_scan_limits(rclient: redis.Redis) -> None:
    fill(rclient, 50)
    records = Records(rclient, Keys("eventfwd"))
    expected = [m for m in rclient.zrevrange("eventfwd:dead", 0, -1) if int(m[1:]) % 4 == 0]
    assert walk(records, DeadFilter(message="PAGE_ID")) == expected


def test_a_page_after_a_purged_cursor_goes_on_from_its_time(rclient: redis.Redis) -> None:
    fill(rclient, 30, same_ms_every=1)
    records = Records(rclient, Keys("eventfwd"))
    first = dead_page(records, size=5)
    assert first.next_cursor is not None
    rclient.zrem("eventfwd:dead", first.rows[-1].id)  # the cursor's entry leaves meanwhile
    second = dead_page(records, cursor=first.next_cursor, size=5)
    newest_first = rclient.zrevrange("eventfwd:dead", 0, -1)
    assert [e.id for e in second.rows] == newest_first[4:9]
