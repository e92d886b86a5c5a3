"""Beat's periodic work run by a real worker: the pump's heartbeat and dead-letter retention."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from eventfwd.core import task_names as tasks
from tests.integration.test_cli import make_dead
from tests.support.stack import wait_for
from worker.app import celery_config, create_app

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
