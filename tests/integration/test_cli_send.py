"""`eventfwd send`: streaming input, line numbers, batches, backpressure and resuming."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from eventfwd.cli.main import cli
from producers import EventProducer
from tests.conftest import example_events
from tests.support.dead import run
from tests.support.ledger import backlog

pytestmark = pytest.mark.integration


def test_send_reports_errors_in_a_pretty_json_array_by_line(
    redis_url: str, tmp_path: Path, rclient: redis.Redis
) -> None:
    events = example_events()
    bad = dict(events[2])
    bad.pop("page_id")  # PAGE_VIEW needs one
    path = tmp_path / "events.json"
    text = json.dumps([events[0], bad, events[1]], indent=2)
    path.write_text(text)
    starts = [n for n, line in enumerate(text.splitlines(), start=1) if line == "  {"]
    result = run(redis_url, "send", "acme", str(path))
    assert result.exit_code == 1
    assert f"line {starts[1]}: page_id: PAGE_VIEW needs a non-empty page_id" in result.output
    assert "2 enqueued, 1 refused" in result.output
    assert backlog(rclient, "acme") == 2


def test_send_stops_at_a_broken_array_and_says_so(redis_url: str, tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_text("[\n" + json.dumps(example_events()[0]) + ",\n{broken\n]")
    result = run(redis_url, "send", "acme", str(path))
    assert result.exit_code == 1
    assert "line 3: not JSON" in result.output and "the rest of the array was not read" in (
        result.output
    )
    assert "1 enqueued, 1 refused" in result.output


def test_send_refuses_a_bad_platform_id_as_a_usage_error(redis_url: str) -> None:
    result = run(redis_url, "send", "a/b", "-", input="[]")
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "PLATFORM_ID" in result.output


def test_send_skip_resumes_after_the_values_already_sent(
    redis_url: str, tmp_path: Path, rclient: redis.Redis
) -> None:
    events = example_events()
    for e in events:
        e.pop("id")
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    result = run(redis_url, "send", "acme", str(path), "--skip", "5", "--batch-size", "2")
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "3 enqueued, 0 refused (5 skipped)",
        "note: 3 event(s) had no id, so eventfwd gave them one; "
        "sending this input again would send those twice",
    ]
    bodies = [json.loads(rclient.hget(f"eventfwd:ev:{i}", "body")) for i in _ids(rclient)]
    assert sorted(b["event_type"] for b in bodies) == sorted(e["event_type"] for e in events[5:])


def _ids(rclient: redis.Redis) -> list[str]:
    return list(rclient.zrange("eventfwd:ready:acme", 0, -1))


def test_send_backfills_behind_live_events_and_waits_while_many_are_ready(
    redis_url: str, rclient: redis.Redis
) -> None:
    rclient.zadd("eventfwd:ready:acme", {f"earlier-{i}": i for i in range(5)})

    def drain() -> None:
        time.sleep(1.2)
        rclient.zrem("eventfwd:ready:acme", *[f"earlier-{i}" for i in range(5)])

    thread = threading.Thread(target=drain)
    thread.start()
    started = time.monotonic()
    result = run(redis_url, "send", "acme", "--max-queue", "3", input=json.dumps(example_events()))
    thread.join()
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started >= 1.0
    assert "8 enqueued, 0 refused" in result.output
    assert re.search(r"waited \ds in all for the platform's ready events to drain", result.output)
    # a backfill joins the backlog lane: behind any live event enqueued later
    live = EventProducer(redis_url).enqueue("acme", example_events()[0] | {"id": None})
    assert rclient.zrange("eventfwd:ready:acme", 0, 0) == [live]
    backfilled = [i for i in _ids(rclient) if i != live]
    assert {rclient.hget(f"eventfwd:ev:{i}", "lane") for i in backfilled} == {"backlog"}


def test_send_when_redis_is_down_says_where_to_resume(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in example_events()))
    result = CliRunner().invoke(
        cli,
        ["send", "acme", str(path), "--batch-size", "4", "--max-queue", "0"],
        env={"EVENTFWD_REDIS_URL": "redis://127.0.0.1:1/0"},
    )
    assert result.exit_code == 3, result.output
    assert result.output.count("\n") == 1
    assert "0 event(s) were enqueued before it; resume with --skip 0" in result.output


def test_send_dry_run_needs_no_redis(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["send", "acme", "--dry-run"],
        input=json.dumps(example_events()),
        env={"EVENTFWD_REDIS_URL": "redis://127.0.0.1:1/0"},
    )
    assert result.exit_code == 0 and "8 valid (dry run, nothing enqueued)" in result.output
