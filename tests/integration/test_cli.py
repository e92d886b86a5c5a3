"""The operator CLI against a real redis-server, through click's CliRunner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from eventfwd.cli.main import cli
from eventfwd.core.settings import Settings
from producers import EventProducer
from tests.conftest import example_events
from tests.support.dead import make_dead, run
from tests.support.ledger import backlog

pytestmark = pytest.mark.integration


@pytest.fixture
def dead_letters(settings: Settings) -> dict[str, str]:
    return {
        "a": make_dead(settings, "acme", "rejected", "400", "missing page_id"),
        "b": make_dead(settings, "acme", "retries_exhausted", "503", "unavailable"),
        "c": make_dead(settings, "other", "retries_exhausted", "500", "boom"),
    }


def test_dead_list_json_has_one_object_per_line_with_the_documented_fields(
    redis_url: str, dead_letters: dict[str, str]
) -> None:
    result = run(redis_url, "dead", "list", "--json")
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["id"] for r in rows] == [dead_letters["a"], dead_letters["b"], dead_letters["c"]]
    for key in ("id", "platform_id", "reason", "status", "message", "attempts", "dead_at", "event"):
        assert key in rows[0]
    assert (rows[0]["reason"], rows[0]["status"], rows[0]["message"]) == (
        "rejected",
        400,
        "missing page_id",
    )
    assert rows[0]["event"]["event_type"] == "HOME"
    assert rows[0]["attempts"] == 1


def test_dead_list_filters_and_limits(redis_url: str, dead_letters: dict[str, str]) -> None:
    by_reason = run(redis_url, "dead", "list", "--json", "--reason", "retries_exhausted")
    assert [json.loads(x)["id"] for x in by_reason.output.splitlines()] == [
        dead_letters["b"],
        dead_letters["c"],
    ]
    by_platform = run(redis_url, "dead", "list", "--json", "--platform", "other")
    assert [json.loads(x)["id"] for x in by_platform.output.splitlines()] == [dead_letters["c"]]
    assert len(run(redis_url, "dead", "list", "--json", "--limit", "1").output.splitlines()) == 1


def test_dead_list_prints_a_table_with_a_count_line(
    redis_url: str, dead_letters: dict[str, str]
) -> None:
    result = run(redis_url, "dead", "list")
    assert result.output.splitlines()[0].split()[:4] == ["ID", "PLATFORM", "REASON", "STATUS"]
    assert "missing page_id" in result.output
    assert result.output.splitlines()[-1] == "3 shown of 3 dead letter(s)"


def test_dead_show_prints_the_record_and_history(
    redis_url: str, dead_letters: dict[str, str]
) -> None:
    result = run(redis_url, "dead", "show", dead_letters["a"], "--json")
    record = json.loads(result.output)
    assert record["history"][0]["message"] == "missing page_id"
    assert run(redis_url, "dead", "show", "no-such-id").exit_code == 4


def test_dead_replay_by_id_and_all_and_dry_run(
    redis_url: str, dead_letters: dict[str, str], rclient: redis.Redis
) -> None:
    assert "would replay 3" in run(redis_url, "dead", "replay", "--all", "--dry-run").output
    assert rclient.zcard("eventfwd:dead") == 3
    result = run(redis_url, "dead", "replay", dead_letters["a"])
    assert "replayed 1" in result.output
    assert rclient.hget(f"eventfwd:ev:{dead_letters['a']}", "state") == "ready"
    assert "replayed 2" in run(redis_url, "dead", "replay", "--all").output
    assert rclient.zcard("eventfwd:dead") == 0
    assert run(redis_url, "dead", "replay").exit_code == 2  # neither ids nor a selection


def test_dead_purge_asks_unless_yes(
    redis_url: str, dead_letters: dict[str, str], rclient: redis.Redis
) -> None:
    declined = run(redis_url, "dead", "purge", "--all", input="n\n")
    assert declined.exit_code == 1 and rclient.zcard("eventfwd:dead") == 3
    assert "purged 1" in run(redis_url, "dead", "purge", dead_letters["c"], "--yes").output
    assert "purged 2" in run(redis_url, "dead", "purge", "--all", "--yes").output
    assert rclient.zcard("eventfwd:dead") == 0
    assert not rclient.exists(f"eventfwd:ev:{dead_letters['a']}")


def test_stats_json_counts_backlog_and_dead(
    redis_url: str, settings: Settings, dead_letters: dict[str, str]
) -> None:
    EventProducer(settings=settings).enqueue_many("acme", example_events()[1:4])
    stats = json.loads(run(redis_url, "stats", "--json").output)
    assert stats["backlog"] == 3
    assert stats["dead"] == 3
    assert stats["dead_by_reason"] == {"rejected": 1, "retries_exhausted": 2}
    assert stats["platforms"]["acme"]["circuit"] == "closed"


def test_send_enqueues_valid_lines_and_reports_refused_ones_by_line(
    redis_url: str, tmp_path: Path, rclient: redis.Redis
) -> None:
    events = example_events()
    bad = dict(events[6])
    bad["serach_query"] = bad.pop("search_query")
    lines = [json.dumps(events[0]), "", "{not json", json.dumps(bad), json.dumps(events[1])]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    dry = run(redis_url, "send", "acme", str(path), "--dry-run")
    assert dry.exit_code == 1 and "2 valid (dry run" in dry.output
    assert backlog(rclient, "acme") == 0
    result = run(redis_url, "send", "acme", str(path))
    assert result.exit_code == 1
    assert "line 3: not JSON" in result.output
    assert (
        "line 4: serach_query" in result.output and "did you mean 'search_query'" in result.output
    )
    assert "2 enqueued, 2 refused" in result.output
    assert backlog(rclient, "acme") == 2


def test_send_reads_a_json_array_from_stdin(redis_url: str, rclient: redis.Redis) -> None:
    result = run(redis_url, "send", "acme", "-", input=json.dumps(example_events()))
    assert result.exit_code == 0 and "8 enqueued, 0 refused" in result.output
    assert backlog(rclient, "acme") == 8


def test_circuit_status_and_reset(redis_url: str, settings: Settings, rclient: redis.Redis) -> None:
    EventProducer(settings=settings).enqueue("acme", example_events()[0])
    rclient.hset(
        "eventfwd:circuit:acme",
        mapping={
            "state": "open",
            "reason": "auth",
            "opened_ms": 1,
            "next_probe_ms": 2,
            "failures": 0,
        },
    )
    row = json.loads(run(redis_url, "circuit", "status", "--json").output)
    assert (row["platform_id"], row["state"], row["reason"]) == ("acme", "open", "auth")
    run(redis_url, "circuit", "reset", "acme")
    assert rclient.hget("eventfwd:circuit:acme", "state") == "closed"


def test_unreachable_redis_is_one_line_and_exit_code_3() -> None:
    result = CliRunner().invoke(cli, ["stats"], env={"EVENTFWD_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.exit_code == 3
    assert result.output.count("\n") == 1 and "unreachable" in result.output


def test_bad_settings_stop_the_cli_naming_the_variable() -> None:
    result = CliRunner().invoke(cli, ["stats"], env={"EVENTFWD_MAX_ATTEMPTS": "lots"})
    assert result.exit_code == 78
    assert "EVENTFWD_MAX_ATTEMPTS" in result.output


def test_eventfwd_dev_delivers_the_sample_and_shows_the_dead_letters(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable, "-c", "from eventfwd.cli.main import main; main()",
            "dev", "--exit", "--events", "16", "--dir", str(tmp_path / "dev"),
        ],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "delivered to the fake Moloco: 16" in proc.stdout
    assert "dead letters: 3" in proc.stdout
    assert "rejected  HTTP 400: missing page_id" in proc.stdout
    assert "eventfwd dead list" in proc.stdout
    # the console answered before its URL was printed
    assert "web console   http://127.0.0.1:" in proc.stdout
