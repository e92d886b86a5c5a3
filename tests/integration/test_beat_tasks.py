"""Beat's periodic work run by a real worker: the pump's heartbeat, dead-letter retention and
replay (one run at a time), and a second beat standing by."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from eventfwd.core import task_names as tasks
from eventfwd.core.lock import RedisLock, read_holder
from producers import EventProducer
from tests.conftest import example_events
from tests.support.dead import make_dead
from tests.support.stack import wait_for
from worker.app import celery_config, create_app
from worker.beat import lock_ttl_s

pytestmark = pytest.mark.integration


def test_the_schedule_holds_pump_replay_and_retention_on_the_control_queue(settings) -> None:  # type: ignore[no-untyped-def]
    config = celery_config(settings)
    scheduled = {entry["task"] for entry in config["beat_schedule"].values()}
    assert scheduled == {tasks.PUMP, tasks.REPLAY, tasks.RETENTION}
    assert all(config["task_routes"][t]["queue"] == "eventfwd.control" for t in scheduled)


def test_each_pump_run_records_beats_heartbeat(make_stack, rclient: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack()
    stack.worker()
    stack.beat()
    first = wait_for(lambda: rclient.hget("eventfwd:beat", "last_tick_ms"), 30, what="a tick")
    wait_for(lambda: rclient.hget("eventfwd:beat", "last_tick_ms") != first, 10, what="another")


def test_the_retention_task_exports_then_trims_dead_letters_over_the_count(  # type: ignore[no-untyped-def]
    make_stack, settings, rclient: redis.Redis, tmp_path: Path
) -> None:
    ids = [make_dead(settings, "acme", "rejected", "400", f"m{i}") for i in range(3)]
    export_dir = tmp_path / "exports"
    export_dir.mkdir()
    env = {
        "EVENTFWD_DEAD_LETTER_MAX_COUNT": "1",
        "EVENTFWD_DEAD_LETTER_EXPORT_DIR": str(export_dir),
    }
    stack = make_stack()
    stack.worker(**env)
    app = create_app(stack.settings(**env))
    app.send_task(tasks.RETENTION, queue="eventfwd.control")
    wait_for(lambda: rclient.zcard("eventfwd:dead") == 1, 30, what="the trim")
    assert rclient.zrange("eventfwd:dead", 0, -1) == [ids[2]]  # the newest stays
    exported = [
        json.loads(line) for f in export_dir.iterdir() for line in f.read_text().splitlines()
    ]
    assert sorted(r["id"] for r in exported) == sorted(ids[:2])


def test_a_dead_letter_task_skips_while_another_run_of_it_holds_its_lock(  # type: ignore[no-untyped-def]
    make_stack, settings, rclient: redis.Redis
) -> None:
    ids = [make_dead(settings, "acme", "rejected", "400", f"m{i}") for i in range(3)]
    ids.append(make_dead(settings, "acme", "retries_exhausted", "503", "down"))
    env = {"EVENTFWD_DEAD_LETTER_MAX_COUNT": "1"}
    stack = make_stack()
    worker = stack.worker(**env)
    app = create_app(stack.settings(**env))
    # A run in progress elsewhere (another worker, started by a second beat) holds the locks.
    runs = {name: RedisLock(rclient, f"eventfwd:lock:{name}", ttl_s=60) for name in
            ("retention", "replay")}  # fmt: skip
    assert all(lock.take()[0] for lock in runs.values())
    app.send_task(tasks.RETENTION, queue="eventfwd.control")
    app.send_task(tasks.REPLAY, queue="eventfwd.control")
    for what in ("dead-letter retention", "dead-letter replay"):
        wait_for(lambda w=what: f"{w} skipped: another run is in progress" in worker.log(), 30,
                 what=f"the {what} to skip")  # fmt: skip
    assert rclient.zcard("eventfwd:dead") == 4  # neither trimmed nor replayed
    for lock in runs.values():
        lock.release()
    app.send_task(tasks.RETENTION, queue="eventfwd.control")
    wait_for(lambda: rclient.zcard("eventfwd:dead") == 1, 30, what="the trim")
    assert read_holder(rclient, "eventfwd:lock:retention") is None  # released after the run


SENT_PUMP = "Sending due task pump"


def _holder_pid(rclient: redis.Redis) -> int | None:
    holder = read_holder(rclient, "eventfwd:lock:beat")
    return holder.pid if holder else None


def _ticks(rclient: redis.Redis) -> int:
    return int(rclient.hget("eventfwd:beat", "ticks") or 0)


def test_a_second_beat_stands_by_and_takes_over_when_the_holder_is_killed(  # type: ignore[no-untyped-def]
    make_stack, sink: Any, rclient: redis.Redis
) -> None:
    stack = make_stack()
    stack.worker()
    first = stack.beat("beat-a")
    wait_for(lambda: _holder_pid(rclient) == first.pid, 30, what="the first beat to hold the lock")
    second = stack.beat("beat-b")
    wait_for(lambda: "standby, sending nothing" in second.log(), 30, what="the second to wait")
    ticks = _ticks(rclient)
    # pump intervals with both beats up: the holder's pumps run, the standby sends nothing
    wait_for(lambda: _ticks(rclient) >= ticks + 3, 10, what="three pumps with both beats up")
    assert first.log().count(SENT_PUMP) >= 3 and SENT_PUMP not in second.log()
    assert _holder_pid(rclient) == first.pid

    first.signal(signal.SIGKILL)
    killed_s = time.monotonic()
    wait_for(lambda: _holder_pid(rclient) == second.pid, 30, what="the standby to take over")
    took_s = time.monotonic() - killed_s
    ttl_s = lock_ttl_s(stack.settings())
    # The TTL after the last extension, then one retry (a fifth of it), and slack for a busy
    # machine: a standby that waited for a live holder's lock would not get it at all.
    assert took_s <= ttl_s + 4, took_s
    assert "took the lock" in second.log()
    ticks = _ticks(rclient)
    wait_for(lambda: _ticks(rclient) >= ticks + 3, 10, what="the pump to run again")
    assert SENT_PUMP in second.log()

    # Delivery goes on; the retry of a 503 needs the pump, so the new holder's pumps reach it.
    sink.add_fault({"fault": 503, "count": 1})
    event_id = EventProducer(settings=stack.settings()).enqueue("acme", example_events()[0])
    wait_for(lambda: event_id in [e["event"]["id"] for e in sink.events()], 30,
             what="the event retried and delivered")  # fmt: skip
    assert sink.stats()["requests"] == 2
    assert sink.stats()["by_status"] == {"503": 1, "200": 1}


def test_a_beat_stopped_cleanly_releases_its_lock_for_the_standby(  # type: ignore[no-untyped-def]
    make_stack, rclient: redis.Redis
) -> None:
    stack = make_stack()
    first = stack.beat("beat-a")
    wait_for(lambda: _holder_pid(rclient) == first.pid, 30, what="the first beat to hold the lock")
    second = stack.beat("beat-b")
    wait_for(lambda: "standby, sending nothing" in second.log(), 30, what="the second to wait")
    stopped_s = time.monotonic()
    first.stop()  # SIGTERM
    wait_for(lambda: _holder_pid(rclient) == second.pid, 30, what="the standby to take over")
    # Released, not expired: the standby's next try (a fifth of the TTL) takes it.
    assert time.monotonic() - stopped_s < lock_ttl_s(stack.settings()), "waited for expiry"
    assert "released the lock" in first.log()
