"""Checking a line of a dead-letter file before `eventfwd dead import` writes it."""

from __future__ import annotations

import json
import time
from typing import Any

from eventfwd.core.export import HISTORY_MAX_CHARS, ImportRow, parse_record
from eventfwd.core.settings import Settings

SETTINGS = Settings()
NOW = 1_767_225_600_000


def record(**changes: Any) -> dict[str, Any]:
    event = {
        "id": "e-1",
        "event_type": "HOME",
        "timestamp": str(int(time.time() * 1000) - 1000),
        "channel_type": "SITE",
        "user_id": "5e884898da28047151d0e56f8dc6292773603d0d",
        "page_id": "home",
    }
    base = {"id": "e-1", "platform_id": "acme", "reason": "rejected", "status": 400, "event": event}
    return {**base, **changes}


def test_a_minimal_line_gets_defaults_and_the_validated_body() -> None:
    row = parse_record(record(), SETTINGS, now_ms=NOW, validate=True)
    assert isinstance(row, ImportRow)
    assert (row.id, row.platform_id, row.reason, row.status) == ("e-1", "acme", "rejected", "400")
    assert (row.dead_ms, row.enqueued_ms, row.attempts, row.history) == (NOW, NOW, 0, "")
    assert json.loads(row.body)["page_id"] == "home"
    assert row.event_ms == int(json.loads(row.body)["timestamp"])


def test_every_problem_of_a_line_is_reported() -> None:
    bad = record(
        id="",
        platform_id="a b",
        reason="lost",
        status="400",
        attempts=-1,
        event_at="yesterday",
        history="no",
        event={"event_type": "PAGE_VIEW", "timestamp": "1", "channel_type": "SITE"},
    )
    problems = parse_record(bad, SETTINGS, now_ms=NOW, validate=True)
    assert isinstance(problems, list)
    text = "\n".join(problems)
    for expected in ("id: required", "platform_id", "reason: must be one of", "status:",
                     "attempts:", "event_at:", "history:", "event.page_id"):  # fmt: skip
        assert expected in text, text


def test_an_event_id_that_differs_from_the_record_id_is_refused() -> None:
    problems = parse_record(record(id="other"), SETTINGS, now_ms=NOW, validate=True)
    assert problems == ["event.id 'e-1' differs from id 'other'"]


def test_without_validation_the_body_is_kept_as_given() -> None:
    event = {"id": "e-1", "anything": True, "timestamp": "5"}
    row = parse_record(record(event=event), SETTINGS, now_ms=NOW, validate=False)
    assert isinstance(row, ImportRow)
    assert json.loads(row.body) == event and row.event_ms == 5


def test_a_long_history_keeps_its_newest_records() -> None:
    history = [{"n": i, "message": "x" * 100} for i in range(200)]
    row = parse_record(record(history=history), SETTINGS, now_ms=NOW, validate=True)
    assert isinstance(row, ImportRow)
    kept = [json.loads(line)["n"] for line in row.history.splitlines()]
    assert len(row.history) <= HISTORY_MAX_CHARS and kept[-1] == 199 and kept[0] > 0


def test_a_bad_event_time_is_refused_not_replaced() -> None:
    problems = parse_record(record(event_at=10**30), SETTINGS, now_ms=NOW, validate=True)
    assert problems == [problems[0]] and problems[0].startswith("event_at: must be")
    row = parse_record(record(event_at=NOW - 5), SETTINGS, now_ms=NOW, validate=True)
    assert isinstance(row, ImportRow) and row.event_ms == NOW - 5
