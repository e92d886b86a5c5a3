"""Hostile files and records for the CLI: no traceback, no lost batch, no raw escape codes.

(issue #11, items 6 and 7)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from eventfwd.core.export import Importer, ImportRow
from eventfwd.core.keys import Keys
from eventfwd.core.settings import Settings
from tests.conftest import example_events
from tests.support.dead import dead_record, run

pytestmark = pytest.mark.integration
DEEP = "[" * 200_000 + "]" * 200_000


def test_send_reports_a_deeply_nested_line_and_keeps_the_others(
    redis_url: str, tmp_path: Path, rclient: redis.Redis
) -> None:
    events = example_events()
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([json.dumps(events[0]), DEEP, json.dumps(events[1])]) + "\n")
    result = run(redis_url, "send", "acme", str(path))
    assert result.exit_code == 1, result.output
    assert "line 2: " in result.output and "nested" in result.output
    assert "2 enqueued, 1 refused" in result.output
    assert rclient.zcard("eventfwd:ready:acme") == 2


def test_send_stops_at_a_deeply_nested_array_value_after_enqueueing_what_came_before(
    redis_url: str, tmp_path: Path, rclient: redis.Redis
) -> None:
    path = tmp_path / "events.json"
    path.write_text("[" + json.dumps(example_events()[0]) + ",\n" + DEEP + "]")
    result = run(redis_url, "send", "acme", str(path))
    assert result.exit_code == 1, result.output
    assert "nested" in result.output and "1 enqueued, 1 refused" in result.output
    assert rclient.zcard("eventfwd:ready:acme") == 1


@pytest.mark.parametrize("validate", [True, False])
def test_dead_import_refuses_hostile_lines_and_imports_the_rest(
    redis_url: str, tmp_path: Path, validate: bool
) -> None:
    good = dead_record()
    deep_event = dead_record()
    deep_event["event"]["extra"] = json.loads("[" * 500 + "]" * 500)
    lines = [
        json.dumps(good),
        DEEP,
        json.dumps(dead_record(dead_at=10**30)),
        json.dumps(dead_record(id="evil\x1b[2J\nINFO forged")),
        json.dumps(dead_record(platform="../../x")),
        json.dumps(deep_event),
    ]
    path = tmp_path / "dead.jsonl"
    path.write_text("\n".join(lines) + "\n")
    args = ["dead", "import", str(path)] + ([] if validate else ["--no-validate"])
    result = run(redis_url, *args)
    assert result.exit_code == 1, result.output
    # --no-validate keeps an archive's body as it is: 500 levels is deep, but JSON still.
    expected = (
        "imported 1, replaced 0, refused 5" if validate else "imported 2, replaced 0, refused 4"
    )
    assert expected in result.output
    assert "\x1b" not in result.output
    for number in range(2, 7 if validate else 6):
        assert f"line {number}: " in result.output


def test_dead_list_and_show_escape_control_characters_and_survive_absurd_times(
    redis_url: str, settings: Settings
) -> None:
    # Written straight to Redis, as an older version or a hand-made import could have.
    event_id = "evil\x1b[2J\nINFO forged"
    body = json.dumps({**example_events()[0], "id": event_id})
    row = ImportRow(
        id=event_id,
        platform_id="acme",
        body=body,
        event_ms=int(time.time() * 1000),
        enqueued_ms=10**30,
        attempts=1,
        replays=0,
        reason="rejected",
        status="400",
        message="bad\x1b[31m\nred",
        dead_ms=10**18,
        history='{"at_ms":100000000000000000000,"status":400,"outcome":"x\\u001b"}',
    )
    client = redis.Redis.from_url(settings.redis_url)
    assert Importer(client, Keys(settings.key_prefix)).write([row], replace=False) == [1]
    listed = run(redis_url, "dead", "list")
    assert listed.exit_code == 0, listed.output
    assert "\x1b" not in listed.output and "INFO forged" not in listed.output.splitlines()[-1:]
    assert "\\x1b" in listed.output or "\\u001b" in listed.output
    shown = run(redis_url, "dead", "show", event_id)
    assert shown.exit_code == 0, shown.output
    assert "\x1b" not in shown.output
    assert not any(line.startswith("INFO forged") for line in shown.output.splitlines())
