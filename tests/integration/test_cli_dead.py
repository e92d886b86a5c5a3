"""`eventfwd dead list|show|stats|export|import` against a real redis-server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from eventfwd.core.settings import Settings
from producers import EventProducer
from tests.conftest import example_events
from tests.support.dead import dead_ids, dead_record, import_dead, make_dead, run

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000


@pytest.fixture
def mixed(settings: Settings) -> dict[str, str]:
    """Dead letters of two platforms, three reasons, four statuses and four ages."""
    now = int(time.time() * 1000)
    ids = import_dead(
        settings,
        dead_record("acme", "rejected", 400, now - 50 * HOUR_MS),
        dead_record("acme", "rejected", 422, now - 20 * HOUR_MS),
        dead_record("acme", "retries_exhausted", 503, now - 2 * HOUR_MS),
        dead_record("other", "retries_exhausted", None, now - 30 * 60_000),
        dead_record("other", "expired", None, now - 60_000),
    )
    return dict(zip(["old400", "acme422", "acme503", "other_timeout", "expired"], ids, strict=True))


def test_dead_list_filters_by_status_exact_class_and_none(
    redis_url: str, mixed: dict[str, str]
) -> None:
    assert dead_ids(redis_url, "--status", "400") == [mixed["old400"]]
    assert dead_ids(redis_url, "--status", "4xx") == [mixed["old400"], mixed["acme422"]]
    assert dead_ids(redis_url, "--status", "none") == [mixed["other_timeout"], mixed["expired"]]
    assert dead_ids(redis_url, "--status", "5xx", "--status", "none", "--platform", "other") == [
        mixed["other_timeout"],
        mixed["expired"],
    ]


def test_dead_list_filters_by_time_relative_and_absolute(
    redis_url: str, mixed: dict[str, str]
) -> None:
    assert dead_ids(redis_url, "--since", "3h") == [
        mixed["acme503"],
        mixed["other_timeout"],
        mixed["expired"],
    ]
    assert dead_ids(redis_url, "--until", "1d") == [mixed["old400"]]
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 25 * 3600))
    until = str(int(time.time() * 1000) - 3 * HOUR_MS)
    assert dead_ids(redis_url, "--since", since, "--until", until) == [mixed["acme422"]]


def test_dead_list_combines_filters_and_limit_zero_lists_all(
    redis_url: str, mixed: dict[str, str]
) -> None:
    assert dead_ids(redis_url, "--platform", "acme", "--reason", "retries_exhausted") == [
        mixed["acme503"]
    ]
    assert dead_ids(redis_url, "--reason", "rejected", "--reason", "expired") == [
        mixed["old400"],
        mixed["acme422"],
        mixed["expired"],
    ]
    assert len(dead_ids(redis_url, "--limit", "0")) == 5
    assert len(dead_ids(redis_url, "--limit", "2")) == 2


def test_dead_list_table_names_the_filter_and_suggests_limit_0(
    redis_url: str, mixed: dict[str, str]
) -> None:
    result = run(redis_url, "dead", "list", "--platform", "acme", "--limit", "2")
    lines = result.output.splitlines()
    assert lines[0].split() == ["ID", "PLATFORM", "REASON", "STATUS", "ATTEMPTS", "DEAD", "MESSAGE"]
    assert lines[1].split()[:4] == [mixed["old400"], "acme", "rejected", "400"]
    assert "2d 2h ago" in lines[1]
    assert lines[-1] == "2 shown of 5 dead letter(s) (platform acme); --limit 0 shows all"


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--since", "yesterday"], "--since"),
        (["--status", "4x"], "--status"),
        (["--reason", "rejectd"], "--reason"),
        (["--since", "1h", "--until", "2h"], "--since"),
        (["--limit", "-1"], "--limit"),
    ],
)
def test_a_bad_filter_is_one_line_and_exit_code_2(
    redis_url: str, args: list[str], names: str
) -> None:
    result = run(redis_url, "dead", "list", *args)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1, result.output
    assert result.output.startswith("eventfwd: ") and names in result.output


def test_dead_show_prints_the_attempt_history_as_a_table(
    redis_url: str, settings: Settings
) -> None:
    event_id = make_dead(settings, "acme", "rejected", "400", "missing page_id")
    lines = run(redis_url, "dead", "show", event_id).output.splitlines()
    assert lines[0].split() == ["id", event_id]
    assert "reason      rejected" in lines and "message     missing page_id" in lines
    header = lines.index("history (1 attempt(s), newest last):")
    assert lines[header + 1].split() == ["TIME", "STATUS", "OUTCOME", "DURATION", "MESSAGE"]
    assert lines[header + 2].split()[1:] == ["400", "x", "3ms", "missing", "page_id"]
    assert '  "event_type": "HOME",' in lines


def test_dead_show_of_a_delivered_or_unknown_id_exits_4(
    redis_url: str, rclient: redis.Redis
) -> None:
    rclient.set("eventfwd:done:gone-1", 1)
    delivered = run(redis_url, "dead", "show", "gone-1")
    assert delivered.exit_code == 4 and "was delivered" in delivered.output
    unknown = run(redis_url, "dead", "show", "nope")
    assert unknown.exit_code == 4 and unknown.output.count("\n") == 1


def test_dead_show_also_shows_a_waiting_event(redis_url: str, settings: Settings) -> None:
    event_id = EventProducer(settings=settings).enqueue("acme", example_events()[1])
    record = json.loads(run(redis_url, "dead", "show", event_id, "--json").output)
    assert (record["state"], record["reason"], record["platform_id"]) == ("ready", None, "acme")


def test_dead_stats_counts_by_platform_reason_and_status(
    redis_url: str, mixed: dict[str, str]
) -> None:
    stats = json.loads(run(redis_url, "dead", "stats", "--json").output)
    assert stats["total"] == 5
    assert stats["by_platform"] == {"acme": 3, "other": 2}
    assert stats["by_reason"] == {"expired": 1, "rejected": 2, "retries_exhausted": 2}
    assert stats["by_status"] == {"400": 1, "422": 1, "503": 1, "none": 2}
    assert {"platform_id": "other", "reason": "expired", "status": None, "count": 1} in stats[
        "groups"
    ]
    text = run(redis_url, "dead", "stats", "--platform", "acme").output
    assert text.splitlines()[0].startswith("3 dead letter(s) (platform acme): oldest dead 2d 2h")
    assert "by reason    rejected=2  retries_exhausted=1" in text
    assert "acme      rejected           422     1" in text


def test_dead_stats_of_nothing_says_so(redis_url: str) -> None:
    assert run(redis_url, "dead", "stats").output == "no dead letters\n"


def test_export_purge_import_round_trip_restores_every_field(
    redis_url: str, settings: Settings, mixed: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "dead.jsonl"
    exported = run(redis_url, "dead", "export", str(path))
    assert exported.output == f"exported 5 dead letter(s) to {path}\n"
    before = [json.loads(line) for line in path.read_text().splitlines()]
    assert run(redis_url, "dead", "purge", "--all", "--yes").exit_code == 0
    assert dead_ids(redis_url) == []
    imported = run(redis_url, "dead", "import", str(path))
    assert imported.exit_code == 0
    assert imported.output == "imported 5, replaced 0, refused 0\n"
    after = [
        json.loads(line) for line in run(redis_url, "dead", "list", "--json").output.splitlines()
    ]
    assert after == before


def test_export_refuses_to_overwrite_and_appends_on_request(
    redis_url: str, mixed: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "dead.jsonl"
    path.write_text("")
    refused = run(redis_url, "dead", "export", str(path))
    assert refused.exit_code == 2 and "exists" in refused.output
    run(redis_url, "dead", "export", str(path), "--append", "--reason", "expired")
    run(redis_url, "dead", "export", str(path), "--append", "--status", "4xx", "--limit", "1")
    ids = [json.loads(line)["id"] for line in path.read_text().splitlines()]
    assert ids == [mixed["expired"], mixed["old400"]]


def test_export_to_stdout_keeps_the_count_on_stderr(redis_url: str, mixed: dict[str, str]) -> None:
    result = run(redis_url, "dead", "export", "--platform", "other")
    assert [json.loads(x)["id"] for x in result.stdout.splitlines()] == [
        mixed["other_timeout"],
        mixed["expired"],
    ]
    assert result.stderr == "exported 2 dead letter(s) (platform other) to stdout\n"


def test_import_reports_bad_lines_by_number_and_imports_the_rest(
    redis_url: str, tmp_path: Path, rclient: redis.Redis
) -> None:
    good = dead_record("acme")
    bad_event = dead_record("acme")
    bad_event["event"].pop("page_id")
    bad_event["event"]["event_type"] = "PAGE_VIEW"
    lines = [
        json.dumps(good),
        "{oops",
        json.dumps(dead_record("acme", reason="lost")),
        json.dumps(bad_event),
        json.dumps({**dead_record("a/b")}),
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    dry = run(redis_url, "dead", "import", str(path), "--dry-run")
    assert dry.exit_code == 1 and "1 dead letter(s) would be imported, 4 refused" in dry.output
    assert rclient.zcard("eventfwd:dead") == 0
    result = run(redis_url, "dead", "import", str(path))
    assert result.exit_code == 1
    assert "line 2: not JSON" in result.output
    assert "line 3: reason: must be one of" in result.output
    assert "line 4: event.page_id" in result.output or "line 4: event" in result.output
    assert "line 5: platform_id" in result.output
    assert "imported 1, replaced 0, refused 4" in result.output
    assert rclient.hget(f"eventfwd:ev:{good['id']}", "state") == "dead"
    unchecked = run(redis_url, "dead", "import", str(path), "--no-validate", "--replace")
    assert "imported 1, replaced 1, refused 3" in unchecked.output


def test_import_never_touches_live_or_delivered_ids_and_replaces_only_on_request(
    redis_url: str, settings: Settings, tmp_path: Path, rclient: redis.Redis
) -> None:
    live_id = EventProducer(settings=settings).enqueue("acme", example_events()[1])
    rclient.set("eventfwd:done:delivered-1", 1)
    dead = dead_record("acme", message="old")
    records = [dead, dead_record("acme", id=live_id), dead_record("acme", id="delivered-1")]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    first = run(redis_url, "dead", "import", str(path)).output
    assert first == (
        "imported 1, replaced 0, refused 0; skipped 1: a live event has the id; "
        "skipped 1: delivered recently\n"
    )
    assert rclient.hget(f"eventfwd:ev:{live_id}", "state") == "ready"
    dead["message"] = "new"
    path.write_text(json.dumps(dead) + "\n")
    again = run(redis_url, "dead", "import", str(path)).output
    assert "skipped 1: already dead letters (--replace overwrites)" in again
    run(redis_url, "dead", "import", str(path), "--replace")
    assert rclient.hget(f"eventfwd:ev:{dead['id']}", "last_message") == "new"
    assert rclient.hget("eventfwd:stats", "imported") == "2"


def test_import_reads_a_json_array_too(redis_url: str, rclient: redis.Redis) -> None:
    records = [dead_record("acme"), dead_record("other")]
    result = run(redis_url, "dead", "import", "-", input=json.dumps(records, indent=2))
    assert result.output == "imported 2, replaced 0, refused 0\n"
    assert rclient.zcard("eventfwd:dead") == 2
