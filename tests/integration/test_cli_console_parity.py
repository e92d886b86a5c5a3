"""The CLI can do whatever the console can: message/body filters, ids from a file, import and
replay, platform pause, delivered lookup and next attempt times."""

from __future__ import annotations

import json
import logging
import time

import pytest
import redis

from eventfwd.core.settings import Settings
from producers import EventProducer
from tests.conftest import example_events
from tests.support.dead import dead_ids, dead_record, import_dead, run

pytestmark = pytest.mark.integration


@pytest.fixture
def messages(settings: Settings) -> dict[str, str]:
    now = int(time.time() * 1000)
    a, b, c = import_dead(
        settings,
        dead_record("acme", "rejected", 400, now - 3000, message="missing page_id"),
        dead_record("acme", "rejected", 400, now - 2000, message="Missing PAGE_ID in event"),
        dead_record("other", "rejected", 422, now - 1000, message="bad currency"),
    )
    return {"a": a, "b": b, "c": c}


def test_dead_list_filters_by_moloco_message_in_any_case_and_by_body(
    redis_url: str, messages: dict[str, str]
) -> None:
    assert dead_ids(redis_url, "--message", "page_id") == [messages["a"], messages["b"]]
    assert dead_ids(redis_url, "--message", "currency", "--platform", "acme") == []
    assert dead_ids(redis_url, "--grep", messages["c"]) == [messages["c"]]
    assert dead_ids(redis_url, "--grep", "no-body-has-this") == []


def test_dead_stats_by_message_counts_each_message(
    redis_url: str, messages: dict[str, str]
) -> None:
    result = run(redis_url, "dead", "stats", "--by", "message", "--json")
    groups = {
        (g["platform_id"], g["message"]): g["count"] for g in json.loads(result.output)["groups"]
    }
    assert groups == {
        ("acme", "missing page_id"): 1,
        ("acme", "Missing PAGE_ID in event"): 1,
        ("other", "bad currency"): 1,
    }


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "eventfwd.audit"]


def test_dead_purge_by_message_deletes_only_those(
    redis_url: str, messages: dict[str, str], rclient: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="eventfwd.audit")
    result = run(redis_url, "dead", "purge", "--message", "PAGE_ID", "--yes")
    assert result.exit_code == 0 and "purged 2" in result.output, result.output
    assert rclient.zrange("eventfwd:dead", 0, -1) == [messages["c"]]
    # on the audit trail like the console's purge
    [line] = audit_lines(caplog)
    assert "action=dead.purge" in line and "count=2 source=cli" in line and "PAGE_ID" in line


def test_dead_replay_takes_ids_from_stdin(
    redis_url: str, messages: dict[str, str], rclient: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="eventfwd.audit")
    text = f"# from a ticket\n{messages['a']}\n\n{messages['c']} other rejected\n"
    result = run(redis_url, "dead", "replay", "--ids-from", "-", "--rate", "0", input=text)
    assert result.exit_code == 0 and "replayed 2" in result.output, result.output
    assert rclient.zrange("eventfwd:dead", 0, -1) == [messages["b"]]
    [line] = audit_lines(caplog)
    assert "action=dead.replay" in line and "count=2 source=cli what=2 id(s) given" in line


def test_dead_import_with_replay_schedules_what_it_imported(
    redis_url: str, rclient: redis.Redis
) -> None:
    records = [dead_record("acme"), dead_record("acme")]
    text = "".join(json.dumps(r) + "\n" for r in records)
    result = run(redis_url, "dead", "import", "--replay", input=text)
    assert result.exit_code == 0, result.output
    assert "imported 2" in result.output and "replayed 2 of the 2 imported" in result.output
    assert rclient.zcard("eventfwd:dead") == 0
    assert rclient.zcard("eventfwd:ready:acme") == 2


def test_dead_show_prints_the_next_attempt_of_a_waiting_event(
    redis_url: str, settings: Settings, rclient: redis.Redis
) -> None:
    event_id = EventProducer(settings=settings).enqueue("acme", example_events()[1])
    lines = run(redis_url, "dead", "show", event_id).output.splitlines()
    (next_line,) = [line for line in lines if line.startswith("next ")]
    assert "as soon as a delivery engine is free" in next_line and "Z" in next_line
    doc = json.loads(run(redis_url, "dead", "show", event_id, "--json").output)
    assert abs(doc["next_attempt_at"] - time.time() * 1000) < 60_000


def test_dead_show_of_a_delivered_event_says_when_how_often_and_how_fast(
    redis_url: str, rclient: redis.Redis
) -> None:
    # the delivered record the scheduler branch's ack writes (a hash; "1" from older workers)
    rclient.hset(
        "eventfwd:done:order-123",
        mapping={
            "delivered_ms": 1_700_000_000_000,
            "attempts": 2,
            "status": 200,
            "rtt_ms": 48,
            "platform": "acme",
            "enqueued_ms": 1_699_999_990_000,
        },
    )
    result = run(redis_url, "dead", "show", "order-123")
    assert result.exit_code == 4
    assert "delivered to platform acme at 2023-11-14T22:13:20Z" in result.output
    assert "after 2 attempt(s): HTTP 200 in 48 ms" in result.output
    doc = json.loads(run(redis_url, "dead", "show", "order-123", "--json").output)
    assert (doc["state"], doc["attempts"], doc["rtt_ms"]) == ("delivered", 2, 48)


def test_a_paused_platform_shows_in_status_stats_doctor_and_metrics(
    redis_url: str, settings: Settings, rclient: redis.Redis
) -> None:
    EventProducer(settings=settings).enqueue("acme", example_events()[1])
    now = int(time.time() * 1000)
    # the state Ledger.pause_platform writes (scheduler branch)
    rclient.hset("eventfwd:pause:acme", mapping={"by": "cli:alice", "at_ms": now, "reason": "x"})
    status = run(redis_url, "platform", "status", "--json")
    assert json.loads(status.output)["paused_by"] == "cli:alice"
    stats = json.loads(run(redis_url, "stats", "--json").output)
    assert stats["platforms"]["acme"]["paused_by"] == "cli:alice"
    assert "PAUSED by cli:alice" in run(redis_url, "stats").output
    doctor = run(redis_url, "doctor", "--json", "--timeout", "0.2")
    assert "acme was paused by cli:alice" in doctor.output


def test_platform_pause_and_resume_change_the_ledger(
    redis_url: str, settings: Settings, rclient: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="eventfwd.audit")
    EventProducer(settings=settings).enqueue("acme", example_events()[1])
    assert "paused acme" in run(redis_url, "platform", "pause", "acme").output
    assert rclient.exists("eventfwd:pause:acme")
    assert "resumed acme" in run(redis_url, "platform", "resume", "acme").output
    assert not rclient.exists("eventfwd:pause:acme")
    assert "closed the circuit of 0" in run(redis_url, "circuit", "reset", "acme").output
    actions = [line.split()[1] for line in audit_lines(caplog)]
    assert actions == ["action=platform.pause", "action=platform.resume", "action=platform.reset"]
    assert all("source=cli what=platform acme" in line for line in audit_lines(caplog))


def test_platform_pause_of_an_unknown_platform_exits_4(redis_url: str) -> None:
    assert run(redis_url, "platform", "pause", "nope").exit_code == 4


def test_web_refuses_to_bind_beyond_loopback_without_a_secret(redis_url: str) -> None:
    result = run(redis_url, "web", "--host", "0.0.0.0", "--port", "0")
    assert result.exit_code == 78
    assert "EVENTFWD_WEB_SECRET" in result.output
