"""`eventfwd stats`, `circuit` and `doctor` against a real redis-server (and a real stack)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from eventfwd.cli.main import cli
from eventfwd.core.keys import Keys
from eventfwd.core.ledger import Ledger
from eventfwd.core.lock import RedisLock
from eventfwd.core.settings import Settings
from eventfwd.core.vocabulary import RescheduleKind
from producers import EventProducer
from tests.conftest import example_events
from tests.support.dead import run
from tests.support.ledger import claim_ready
from tests.support.stack import wait_for
from worker.heartbeat import record_beat_tick

pytestmark = pytest.mark.integration


@pytest.fixture
def backlog(settings: Settings) -> dict[str, str]:
    """Four events of platform acme: one ready, one in flight, one due, one waiting."""
    producer = EventProducer(settings=settings)
    ids = producer.enqueue_many("acme", example_events()[:3])
    ledger = Ledger(redis.Redis.from_url(settings.redis_url), settings)
    record = {"at_ms": 1, "status": 503, "outcome": "transient", "message": "x"}
    assert set(claim_ready(ledger, "t")) == set(ids)
    for event_id, delay_s in ((ids[1], 0.0), (ids[2], 600.0)):
        ledger.reschedule(
            event_id, "t", kind=RescheduleKind.TRANSIENT, delay_s=delay_s, status="503",
            message="x", record=record,
        )  # fmt: skip
    ready = producer.enqueue("acme", example_events()[3])
    return {"ready": ready, "in_flight": ids[0], "due": ids[1], "waiting": ids[2]}


def test_stats_json_splits_the_backlog_by_state_and_gives_the_oldest_age(
    redis_url: str, backlog: dict[str, str]
) -> None:
    stats = json.loads(run(redis_url, "stats", "--json").output)
    assert (stats["backlog"], stats["due"], stats["in_flight"]) == (4, 1, 1)
    assert (stats["ready"], stats["waiting"], stats["scan_complete"]) == (1, 1, True)
    assert 0 < stats["oldest_pending_age_s"] < 60
    acme = stats["platforms"]["acme"]
    assert (acme["backlog"], acme["due"], acme["circuit"], acme["circuit_failures"]) == (
        4,
        1,
        "closed",
        2,
    )
    assert acme["rate_per_s"] == acme["rate_limit_per_s"] == 30.0
    now = stats["per_minute"][-1]
    assert (now["enqueued"], now["failed"], now["retried"]) == (4, 2, 2)
    assert stats["counters"]["enqueued"] == 4 and "eventfwd" in stats["queues"]  # wake-ups only

    # a scan limit below the backlog: counts stay exact, the oldest age is from what was read
    partial = json.loads(run(redis_url, "stats", "--json", "--scan-limit", "2").output)
    assert (partial["backlog"], partial["scan_complete"]) == (4, False)
    assert 0 < partial["oldest_pending_age_s"] < 60


def test_stats_text_reads_as_a_summary_with_a_platform_table(
    redis_url: str, backlog: dict[str, str], rclient: redis.Redis
) -> None:
    rclient.hset("eventfwd:circuit:acme", mapping={"state": "open", "reason": "auth"})
    lines = run(redis_url, "stats").output.splitlines()
    assert lines[1] == (
        "backlog     4 event(s): 1 ready, 1 in flight, 1 due, 1 waiting (backoff, Retry-After)"
    )
    assert lines[2].startswith("oldest      ") and "become expired dead letters" in lines[2]
    assert lines[3] == "dead        0"
    assert lines[4].split() == [
        "per",
        "minute",
        "this",
        "minute",
        "last",
        "minute",
        "5-min",
        "mean",
    ]
    assert lines[5].split()[:2] == ["delivered", "0"] and lines[6].split()[:2] == ["failed", "2"]
    header = next(i for i, line in enumerate(lines) if line.startswith("PLATFORM"))
    assert lines[header].split()[:4] == ["PLATFORM", "BACKLOG", "READY", "IN"]
    assert lines[header + 1].split()[:4] == ["acme", "4", "1", "1"]
    assert "OPEN (auth)" in lines[header + 1]
    assert lines[-1].startswith("all-time    enqueued=4 failed=2")


def test_stats_watch_refreshes_count_times(redis_url: str, backlog: dict[str, str]) -> None:
    result = run(redis_url, "stats", "--watch", "--json", "--interval", "0.1", "--count", "3")
    docs = [json.loads(line) for line in result.output.splitlines()]
    assert len(docs) == 3 and docs[0]["now"] < docs[2]["now"]
    text = run(redis_url, "stats", "--watch", "--interval", "0.1", "--count", "2").output
    assert text.count("backlog     4 event(s)") == 2


def test_circuit_reset_of_an_unknown_platform_exits_4(redis_url: str) -> None:
    result = run(redis_url, "circuit", "reset", "nope")
    assert result.exit_code == 4 and "unknown platform nope" in result.output


def test_circuit_status_table_shows_an_open_circuit_and_its_message(
    redis_url: str, backlog: dict[str, str], rclient: redis.Redis
) -> None:
    rclient.hset(
        "eventfwd:circuit:acme",
        mapping={"state": "open", "reason": "auth", "opened_ms": int(time.time() * 1000) - 90_000,
                 "next_probe_ms": 1, "last_message": "invalid api key"},
    )  # fmt: skip
    lines = run(redis_url, "circuit", "status").output.splitlines()
    assert lines[1].split()[:5] == ["acme", "open", "auth", "1m", "30s"]
    assert lines[1].endswith("invalid api key")


def doctor(env: dict[str, str], *args: str) -> tuple[int, dict[str, list[dict[str, str]]]]:
    result = CliRunner().invoke(cli, ["doctor", "--json", *args], env=env)
    checks: dict[str, list[dict[str, str]]] = {}
    for line in result.output.splitlines():
        check = json.loads(line)
        checks.setdefault(check["name"], []).append(check)
    return result.exit_code, checks


def status(checks: dict[str, list[dict[str, str]]], name: str) -> str:
    return ",".join(c["status"] for c in checks[name])


def test_doctor_with_redis_down_fails_that_and_skips_what_needs_it() -> None:
    env = {
        "EVENTFWD_REDIS_URL": "redis://127.0.0.1:1/0",
        "EVENTFWD_MOLOCO_BASE_URL": "http://127.0.0.1:1",
        "EVENTFWD_MOLOCO_API_KEY": "k",
    }
    result = CliRunner().invoke(cli, ["doctor"], env=env)
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("ok    settings")
    assert lines[1].startswith("FAIL  redis        redis://127.0.0.1:1/0 is unreachable")
    assert lines[2].startswith("FAIL  moloco       http://127.0.0.1:1 is unreachable")
    assert lines[3].startswith("skip  workers") and lines[4].startswith("skip  beat")
    assert lines[-1] == "2 problem(s), 1 warning(s)"


@pytest.fixture
def base_env(redis_url: str, sink: Any, tmp_path: Path) -> dict[str, str]:
    return {
        "EVENTFWD_REDIS_URL": redis_url,
        "EVENTFWD_MOLOCO_BASE_URL": sink.url,
        "EVENTFWD_MOLOCO_API_KEY": "test-key",
        "EVENTFWD_DEAD_LETTER_EXPORT_DIR": str(tmp_path / "archive"),
    }


def test_doctor_without_workers_reads_beat_from_its_heartbeat(
    base_env: dict[str, str], rclient: redis.Redis
) -> None:
    record_beat_tick(rclient, Keys("eventfwd"))
    code, checks = doctor(base_env, "--timeout", "0.3")
    assert code == 1
    assert status(checks, "workers") == "fail" and "queues" not in checks
    assert status(checks, "beat") == "ok" and "last pump tick 0s ago" in checks["beat"][0]["detail"]
    for name in ("settings", "redis", "persistence", "clock", "moloco", "backlog", "retention"):
        assert status(checks, name) == "ok", checks[name]
    assert status(checks, "beat-lock") == "warn"
    assert checks["beat-lock"][0]["detail"].startswith("no beat holds eventfwd:lock:beat")
    record_beat_tick(rclient, Keys("eventfwd"), now_ms=int(time.time() * 1000) - 60_000)
    _code, checks = doctor(base_env, "--timeout", "0.3")
    assert status(checks, "beat") == "fail" and "1m ago" in checks["beat"][0]["detail"]


def test_doctor_reports_a_broken_broker_connection_and_goes_on(
    base_env: dict[str, str], rclient: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celery.app.control import Control

    def ping(*_: object, **__: object) -> None:
        # what a pooled broker connection to a restarted Redis answers
        raise redis.ConnectionError("Connection closed by server.")

    monkeypatch.setattr(Control, "ping", ping)
    record_beat_tick(rclient, Keys("eventfwd"))
    code, checks = doctor(base_env, "--timeout", "0.3")
    assert code == 1
    assert status(checks, "workers") == "fail"
    assert "could not ask the workers through the broker" in checks["workers"][0]["detail"]
    assert status(checks, "beat") == "ok" and status(checks, "backlog") == "ok"


def test_doctor_shows_which_beat_holds_the_lock(
    base_env: dict[str, str], rclient: redis.Redis
) -> None:
    lock = RedisLock(rclient, "eventfwd:lock:beat", ttl_s=60)
    assert lock.take()[0]
    rclient.set(  # taken 2 minutes ago (by Redis's clock), as the holder's value records
        "eventfwd:lock:beat",
        json.dumps({"token": lock.token, "host": "beat-host-1", "pid": 4242,
                    "since_ms": int(time.time() * 1000) - 120_000}),
        keepttl=True,
    )  # fmt: skip
    _code, checks = doctor(base_env, "--timeout", "0.3")
    assert status(checks, "beat-lock") == "ok"
    assert checks["beat-lock"][0]["detail"] == (
        "held by beat-host-1 (pid 4242) for 2m; any other beat waits as a standby"
    )


def test_doctor_warns_of_overrides_without_an_allow_list_and_names_refused_look_alikes(
    base_env: dict[str, str], rclient: redis.Redis
) -> None:
    env = {**base_env, "EVENTFWD_PLATFORM_ACME_EU_API_KEY": "eu-key"}
    _code, checks = doctor(env, "--timeout", "0.3")
    assert status(checks, "overrides") == "warn"
    assert "(none used yet)" in checks["overrides"][0]["detail"]

    rclient.hset("eventfwd:override_owners", "ACME_EU", "acme-eu")  # pinned by a worker
    now_ms = int(time.time() * 1000)
    rclient.zadd("eventfwd:seen", {"acme-eu": now_ms, "acme.eu": now_ms, "shop": now_ms})
    _code, checks = doctor(env, "--timeout", "0.3")
    detail = checks["overrides"][0]["detail"]
    assert "EVENTFWD_PLATFORM_ACME_EU_* -> acme-eu" in detail
    assert "look-alike ids refused as not_allowed dead letters: acme.eu;" in detail
    assert "set EVENTFWD_ALLOWED_PLATFORMS" in detail

    # with an allow-list the settings check this at start: no warning
    _code, checks = doctor({**env, "EVENTFWD_ALLOWED_PLATFORMS": "acme-eu"}, "--timeout", "0.3")
    assert "overrides" not in checks


@pytest.fixture
def evicting_redis(rclient: redis.Redis) -> Iterator[None]:
    rclient.config_set("maxmemory-policy", "allkeys-lru")
    yield
    rclient.config_set("maxmemory-policy", "noeviction")


def test_doctor_fails_a_redis_that_may_evict_and_warns_on_missing_export_dir(
    base_env: dict[str, str], evicting_redis: None
) -> None:
    del base_env["EVENTFWD_DEAD_LETTER_EXPORT_DIR"]
    _code, checks = doctor(base_env, "--timeout", "0.3")
    assert status(checks, "persistence") == "fail"
    assert "maxmemory-policy is allkeys-lru" in checks["persistence"][0]["detail"]
    assert status(checks, "retention") == "warn"


def test_doctor_against_a_running_stack_finds_nothing_wrong(
    make_stack: Callable[[], Any], base_env: dict[str, str]
) -> None:
    stack = make_stack()
    stack.worker()
    beat = stack.beat()
    env = {
        **stack.env(),
        "EVENTFWD_DEAD_LETTER_EXPORT_DIR": base_env["EVENTFWD_DEAD_LETTER_EXPORT_DIR"],
    }
    wait_for(lambda: doctor(env, "--timeout", "1")[1]["workers"][0]["status"] == "ok", 60,
             interval_s=0.5, what="the worker to answer ping")  # fmt: skip
    code, checks = doctor(env, "--timeout", "1")
    assert code == 0, checks
    assert {c["status"] for cs in checks.values() for c in cs} == {"ok"}
    assert checks["queues"][0]["detail"] == "eventfwd taken by 1, eventfwd.control taken by 1"
    assert checks["beat"][0]["detail"].startswith("last pump tick ")  # the heartbeat
    assert checks["beat-lock"][0]["detail"].startswith(
        f"held by {socket.gethostname()} (pid {beat.pid})"
    )
    assert "answered HTTP 404" in checks["moloco"][0]["detail"]
