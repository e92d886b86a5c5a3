"""The producer's local spool against a real redis-server: fail over, drain, bound, repair."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from eventfwd.cli.main import cli
from eventfwd.core.errors import EnqueueError
from eventfwd.core.ledger import Ledger
from eventfwd.core.schema import validate_event
from eventfwd.core.settings import Settings
from producers import EventProducer
from producers import spool as spool_module
from producers.drain import drain_spool
from producers.spool import Spool, encode
from tests.conftest import example_events
from tests.support.ready import ready_ids
from tests.support.redis_server import RedisServer
from tests.support.stack import wait_for

pytestmark = pytest.mark.integration


def spooling_producer(redis_url: str, spool_dir: Path, **changes: Any) -> EventProducer:
    settings = Settings(redis_url=redis_url, spool_dir=str(spool_dir), **changes)
    return EventProducer(settings=settings)


def in_ledger(rclient: redis.Redis, ids: list[str]) -> bool:
    return all(rclient.exists(f"eventfwd:ev:{i}") for i in ids)


def test_redis_down_spools_in_a_fraction_of_a_second_and_later_requests_skip_redis(
    redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    producer = spooling_producer(redis_url, tmp_path / "spool")
    events = example_events()
    producer.enqueue("acme", events[0])
    redis_server.stop()
    try:
        started = time.monotonic()
        first = producer.enqueue("acme", events[1])
        failover_s = time.monotonic() - started
        started = time.monotonic()
        rest = [producer.enqueue("acme", e) for e in events[2:]]
        per_request_s = (time.monotonic() - started) / len(rest)
    finally:
        redis_server.start()
    assert failover_s < 0.6, "fail over to the spool well within the 1 s enqueue budget"
    assert per_request_s < 0.05, "the outage circuit sends the next requests straight to it"
    assert [first, *rest] == [e["id"] for e in events[1:]]
    producer.close()


def test_spooled_events_drain_by_themselves_when_redis_is_back_keeping_their_ids(
    redis_server: RedisServer, redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    producer = spooling_producer(redis_url, tmp_path / "spool")
    redis_server.stop()
    try:
        minted = producer.enqueue(
            "acme", {k: v for k, v in example_events()[0].items() if k != "id"}
        )
        given = producer.enqueue_many("acme", example_events()[1:])
        status = producer.spool_status()
        assert status is not None
        assert (status.ready_files, status.ready_events) == (2, 8)
    finally:
        redis_server.start()
    ids = [minted, *given]
    wait_for(lambda: in_ledger(rclient, ids), 10, what="the drainer to move every event")
    assert producer.spool_status().ready_events == 0  # type: ignore[union-attr]
    assert len(ready_ids(rclient)) == 8  # every id queued once, none twice
    assert rclient.hget("eventfwd:stats", "enqueued") == "8"
    producer.close()


def test_redis_refusing_writes_spools_too(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    producer = spooling_producer(redis_url, tmp_path / "spool")
    rclient.config_set("maxmemory", 1)  # noeviction: every write is refused with OOM
    try:
        event_id = producer.enqueue("acme", example_events()[0])
        assert producer.spool_status().ready_events == 1  # type: ignore[union-attr]
    finally:
        rclient.config_set("maxmemory", 0)
    wait_for(lambda: in_ledger(rclient, [event_id]), 10, what="the drain after Redis took writes")
    producer.close()


def test_a_full_spool_raises_a_clear_enqueue_error_and_keeps_what_it_holds(
    redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    producer = spooling_producer(redis_url, tmp_path / "spool", spool_max_mb=0.001)  # 1048 bytes
    redis_server.stop()
    try:
        producer.enqueue("acme", example_events()[0])
        with pytest.raises(EnqueueError, match=r"spool .* is full .*EVENTFWD_SPOOL_MAX_MB"):
            for event in example_events()[1:]:
                producer.enqueue("acme", event)
        status = producer.spool_status()
        assert status is not None and 1 <= status.ready_files < 8
        assert status.used_bytes <= status.max_bytes
    finally:
        producer.close()
        redis_server.start()


def test_without_a_spool_directory_an_outage_is_still_an_enqueue_error(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "r").start()
    producer = EventProducer(settings=Settings(redis_url=server.url))
    server.stop()
    with pytest.raises(EnqueueError, match="unreachable"):
        producer.enqueue("acme", example_events()[0])
    assert producer.spool is None


def test_identifiers_are_hashed_once_whether_stored_at_once_or_spooled_and_drained(
    redis_server: RedisServer, redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    producer = spooling_producer(
        redis_url, tmp_path / "spool", hash_identifiers=True, hash_pepper="pep"
    )
    first, second = example_events()[0], example_events()[2]
    producer.enqueue("acme", first)
    redis_server.stop()
    try:
        producer.enqueue("acme", second)
    finally:
        redis_server.start()
    wait_for(lambda: in_ledger(rclient, [second["id"]]), 10, what="the drain")
    for sent in (first, second):
        body = json.loads(rclient.hget(f"eventfwd:ev:{sent['id']}", "body"))  # type: ignore[arg-type]
        assert body["user_id"] == producer.hash_identifier(sent["user_id"])
        assert body["user_id"] != sent["user_id"]
    producer.close()


def _spool_with_batches(directory: Path, batches: list[list[dict[str, Any]]]) -> Spool:
    spool = Spool(directory, max_bytes=512 * 1024 * 1024)
    for events in batches:
        valid = [validate_event(e) for e in events]
        spool.append([(v.id, "acme", v.body, int(v.wire["timestamp"])) for v in valid])
    return spool


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_the_claim_of_a_drainer_that_died_is_taken_over_and_drained(
    settings: Settings, rclient: redis.Redis, tmp_path: Path
) -> None:
    events = example_events()
    spool = _spool_with_batches(tmp_path / "spool", [events[:3], events[3:]])
    name = spool.ready_names()[0]
    owner = spool.owner().rsplit(".", 1)[0] + f".{_dead_pid()}"
    os.rename(spool.ready / name, spool.claimed / f"{owner}~{name}")
    result = drain_spool(spool, _ledger(settings))
    assert (result.files, result.accepted, result.duplicates) == (2, 8, 0)
    assert in_ledger(rclient, [e["id"] for e in events])
    assert not list(spool.claimed.iterdir())


def test_a_live_drainers_fresh_claim_is_left_alone_until_it_is_stale(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spool = _spool_with_batches(tmp_path / "spool", [example_events()[:2]])
    claimed = spool.claim(spool.ready_names()[0])  # held by this (live) process
    assert claimed is not None
    assert drain_spool(spool, _ledger(settings)).files == 0
    monkeypatch.setattr(spool_module, "STALE_CLAIM_S", -1.0)
    assert drain_spool(spool, _ledger(settings)).accepted == 2


def test_a_second_drain_of_the_same_batch_changes_nothing(
    settings: Settings, rclient: redis.Redis, tmp_path: Path
) -> None:
    events = example_events()[:4]
    spool = _spool_with_batches(tmp_path / "spool", [events])
    (copy,) = [spool.ready / n for n in spool.ready_names()]
    data = copy.read_bytes()
    assert drain_spool(spool, _ledger(settings)).accepted == 4
    (spool.ready / copy.name).write_bytes(data)  # as if a crash undid the delete
    again = drain_spool(spool, _ledger(settings))
    assert (again.accepted, again.duplicates) == (0, 4)
    assert len(ready_ids(rclient)) == 4


def _ledger(settings: Settings) -> Ledger:
    return Ledger(redis.Redis.from_url(settings.redis_url), settings)


def _run_cli(settings: Settings, *args: str) -> Any:
    env = {"EVENTFWD_REDIS_URL": settings.redis_url}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_spool_status_and_drain_commands_report_and_keep_ids(
    settings: Settings, rclient: redis.Redis, tmp_path: Path
) -> None:
    events = example_events()
    spool = _spool_with_batches(tmp_path / "spool", [events[:5], events[5:]])
    (spool.ready / "00000000000000000001-1-ab-1.jsonl").write_bytes(b"not a spool file\n")

    status = _run_cli(settings, "spool", "status", "--dir", str(spool.directory), "--json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.output) | {"used_bytes": 0, "oldest_ms": 0} == {
        "directory": str(spool.directory),
        "ready_files": 3,
        "ready_events": 9,  # what the unreadable file's name claims
        "claimed_files": 0,
        "claimed_events": 0,
        "corrupt_files": 0,
        "used_bytes": 0,
        "max_bytes": 512 * 1024 * 1024,
        "oldest_ms": 0,
    }

    drained = _run_cli(settings, "spool", "drain", "--dir", str(spool.directory))
    assert drained.exit_code == 1  # the unreadable file is reported
    assert "drained 8 event(s) from 2 batch(es): 8 enqueued, 0 already" in drained.output
    assert "1 unreadable file(s) moved to corrupt/" in drained.output
    assert in_ledger(rclient, [e["id"] for e in events])
    assert [p.name for p in spool.corrupt.iterdir()] == ["00000000000000000001-1-ab-1.jsonl"]

    text = _run_cli(settings, "spool", "status", "--dir", str(spool.directory))
    assert "waiting  0 event(s) in 0 batch(es)" in text.output
    assert "corrupt  1 file(s)" in text.output


def test_spool_commands_without_a_spool_directory_exit_78(settings: Settings) -> None:
    result = _run_cli(settings, "spool", "status")
    assert result.exit_code == 78
    assert "EVENTFWD_SPOOL_DIR" in result.output


def test_spool_drain_with_redis_unreachable_exits_3_and_keeps_every_batch(
    tmp_path: Path,
) -> None:
    spool = _spool_with_batches(tmp_path / "spool", [example_events()[:2]])
    env = {"EVENTFWD_REDIS_URL": "redis://127.0.0.1:9/0"}
    result = CliRunner().invoke(cli, ["spool", "drain", "--dir", str(spool.directory)], env=env)
    assert result.exit_code == 3, result.output
    assert len(spool.ready_names()) == 1 and not list(spool.claimed.iterdir())


def test_a_spool_file_round_trips_exactly() -> None:
    rows = [("id-1", "acme", '{"a":"é\\n"}', 1), ("id-2", "b", "{}", 2)]
    assert spool_module.decode(encode(rows)) == rows
    with pytest.raises(spool_module.SpoolCorrupt):
        spool_module.decode(encode(rows)[:-20])
