"""`eventfwd dead replay|purge|retention`: selections, pacing, confirmation and Ctrl-C."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from eventfwd.core.ledger import Ledger
from eventfwd.core.settings import Settings
from eventfwd.ops import bulk
from tests.support.dead import dead_record, import_dead, run
from tests.support.stack import ROOT, wait_for
from worker.retention import enforce_retention

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
# The CLI as a user runs it from a terminal, where Ctrl-C raises KeyboardInterrupt. A suite
# started with `nohup` or `&` hands its children SIGINT ignored, and Python then keeps it so.
CLI_WITH_CTRL_C = (
    "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from eventfwd.cli.main import main; main()"
)


def states(rclient: redis.Redis, ids: list[str]) -> dict[str, int]:
    """How many of `ids` are in each state; a dead letter must be in the dead set, and only it."""
    out: dict[str, int] = {}
    for event_id in ids:
        state = rclient.hget(f"eventfwd:ev:{event_id}", "state")
        in_dead = rclient.zscore("eventfwd:dead", event_id) is not None
        platform = rclient.hget(f"eventfwd:ev:{event_id}", "platform")
        in_sched = any(
            rclient.zscore(f"eventfwd:{kind}:{platform}", event_id) is not None
            for kind in ("ready", "sched", "inflight")
        )
        assert in_dead == (state == "dead") and in_sched == (state != "dead"), event_id
        out[str(state)] = out.get(str(state), 0) + 1
    return out


def many_dead(settings: Settings, n: int, **fields: Any) -> list[str]:
    """`n` dead letters, dead a millisecond apart (so oldest-first is their order here)."""
    now = int(time.time() * 1000)
    return import_dead(settings, *(dead_record(dead_at=now - n + i, **fields) for i in range(n)))


def test_replay_by_filter_and_limit_takes_the_oldest_matching(
    redis_url: str, settings: Settings, rclient: redis.Redis
) -> None:
    now = int(time.time() * 1000)
    old = import_dead(settings, dead_record("acme", "rejected", 400, now - 3 * DAY_MS))
    mid = import_dead(settings, dead_record("acme", "rejected", 400, now - 2 * DAY_MS))
    other = import_dead(settings, dead_record("acme", "retries_exhausted", 503, now - DAY_MS))
    result = run(redis_url, "dead", "replay", "--status", "4xx", "--limit", "1")
    assert result.output.splitlines()[-1] == (
        "replayed 1 dead letter(s) (status 4xx, the oldest 1)"
    )
    assert states(rclient, old + mid + other) == {"ready": 1, "dead": 2}
    assert rclient.hget(f"eventfwd:ev:{old[0]}", "state") == "ready"
    assert rclient.hget(f"eventfwd:ev:{old[0]}", "replays") == "1"
    run(redis_url, "dead", "replay", "--since", "36h")
    assert rclient.hget(f"eventfwd:ev:{other[0]}", "state") == "ready"
    assert rclient.hget(f"eventfwd:ev:{mid[0]}", "state") == "dead"


def test_replay_dry_run_counts_by_platform_and_reason_and_changes_nothing(
    redis_url: str, settings: Settings, rclient: redis.Redis
) -> None:
    many_dead(settings, 2, platform="acme", reason="rejected")
    many_dead(settings, 1, platform="other", reason="retries_exhausted", status=None)
    lines = run(redis_url, "dead", "replay", "--all", "--dry-run").output.splitlines()
    assert lines == [
        "would replay 3 dead letter(s)",
        "  by platform  acme=2  other=1",
        "  by reason    rejected=2  retries_exhausted=1",
    ]
    ids = run(redis_url, "dead", "replay", "x", "y", "--dry-run").output
    assert ids == "would replay 0 dead letter(s); 2 of the ids given are not dead letters\n"
    assert rclient.zcard("eventfwd:dead") == 3


def test_replay_rejects_ids_with_a_selection_and_nothing_at_all(redis_url: str) -> None:
    both = run(redis_url, "dead", "replay", "abc", "--reason", "rejected")
    assert both.exit_code == 2 and "not both" in both.output
    assert run(redis_url, "dead", "replay", "--limit", "3").exit_code == 2


def test_replay_of_unknown_ids_exits_4_after_replaying_the_others(
    redis_url: str, settings: Settings, rclient: redis.Redis
) -> None:
    [event_id] = many_dead(settings, 1)
    result = run(redis_url, "dead", "replay", event_id, "not-a-dead-letter")
    assert result.exit_code == 4
    assert "replayed 1 dead letter(s); 1 skipped (not dead letters)" in result.output
    assert rclient.hget(f"eventfwd:ev:{event_id}", "state") == "ready"


def test_replay_is_paced_at_the_rate_given(
    redis_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    many_dead(settings, 30)
    slept: list[float] = []
    monkeypatch.setattr(bulk, "_sleep", slept.append)
    result = run(redis_url, "dead", "replay", "--all", "--rate", "10")
    assert "replayed 30 dead letter(s)" in result.output
    # pages of 10, the first at once; the sleeps here take no time, so the third page waits
    # for its slot two seconds after the first
    assert [round(s) for s in slept] == [1, 2], slept


def test_replay_warns_when_the_platform_circuit_is_open(
    redis_url: str, settings: Settings, rclient: redis.Redis
) -> None:
    many_dead(settings, 1, platform="acme")
    rclient.hset("eventfwd:circuit:acme", mapping={"state": "open", "reason": "auth"})
    result = run(redis_url, "dead", "replay", "--all")
    assert "note: the circuit of platform acme is open" in result.output


def test_an_interrupted_replay_leaves_every_event_whole_and_a_rerun_finishes(
    redis_url: str, settings: Settings, rclient: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = many_dead(settings, 25)
    real_replay = Ledger.replay
    calls: list[int] = []

    def replay_then_ctrl_c(self: Ledger, event_ids: list[str], **kw: Any) -> tuple[int, int]:
        calls.append(len(event_ids))
        if len(calls) == 3:
            raise KeyboardInterrupt  # as if Ctrl-C came in between two pages
        return real_replay(self, event_ids, **kw)

    monkeypatch.setattr(Ledger, "replay", replay_then_ctrl_c)
    monkeypatch.setattr(bulk, "_sleep", lambda s: None)
    result = run(redis_url, "dead", "replay", "--all", "--rate", "10")
    assert result.exit_code == 130
    assert result.output.splitlines()[-1] == (
        "eventfwd: interrupted: replayed 20 dead letter(s); the rest are still dead letters, "
        "none is half-moved (run the same command again to go on)"
    )
    assert states(rclient, ids) == {"ready": 20, "dead": 5}
    monkeypatch.setattr(Ledger, "replay", real_replay)
    assert "replayed 5 dead letter(s)" in run(redis_url, "dead", "replay", "--all").output
    assert states(rclient, ids) == {"ready": 25}


def test_ctrl_c_during_a_real_replay_process_stops_between_pages(
    redis_url: str, settings: Settings, rclient: redis.Redis
) -> None:
    ids = many_dead(settings, 400)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTFWD_")}
    env["EVENTFWD_REDIS_URL"] = redis_url
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI_WITH_CTRL_C, "dead", "replay", "--all", "--rate", "100"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: rclient.zcard("eventfwd:dead") <= 250, 20, what="some replayed")
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "eventfwd: interrupted: replayed" in err and "Traceback" not in err
    counts = states(rclient, ids)
    assert 0 < counts.get("dead", 0) < 400 and counts["dead"] + counts["ready"] == 400
    replayed = int(err.split("replayed ")[1].split(" ")[0])
    assert replayed == counts["ready"]  # exact: Ctrl-C waited for the page in flight


def test_purge_asks_and_takes_no_on_eof_for_an_answer(
    redis_url: str, settings: Settings, rclient: redis.Redis
) -> None:
    many_dead(settings, 2, reason="expired", status=None)
    many_dead(settings, 1)
    asked = run(redis_url, "dead", "purge", "--reason", "expired", input="")
    assert asked.exit_code == 1
    assert "delete 2 dead letter(s) (reason expired) for good? [y/N]" in asked.output
    assert asked.output.rstrip().endswith("nothing deleted")
    yes = run(redis_url, "dead", "purge", "--reason", "expired", input="y\n")
    assert yes.exit_code == 0 and "purged 2 dead letter(s) (reason expired)" in yes.output
    assert rclient.zcard("eventfwd:dead") == 1
    nothing = run(redis_url, "dead", "purge", "--reason", "expired")
    assert nothing.output == "no dead letters (reason expired); nothing deleted\n"


def test_purge_with_export_keeps_a_copy_that_imports_back(
    redis_url: str, settings: Settings, tmp_path: Path, rclient: redis.Redis
) -> None:
    ids = many_dead(settings, 3, platform="other")
    path = tmp_path / "kept.jsonl"
    result = run(redis_url, "dead", "purge", "--platform", "other", "--yes", "--export", str(path))
    assert f"purged 3 dead letter(s) (platform other), after writing 3 to {path}" in result.output
    assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == ids
    assert rclient.zcard("eventfwd:dead") == 0
    assert "imported 3" in run(redis_url, "dead", "import", str(path)).output


def test_purge_of_an_id_that_is_not_a_dead_letter_exits_4(
    redis_url: str, settings: Settings
) -> None:
    [event_id] = many_dead(settings, 1)
    result = run(redis_url, "dead", "purge", event_id, "other-id", "--yes")
    assert result.exit_code == 4 and "purged 1 dead letter(s); 1 skipped" in result.output


def test_retention_exports_then_trims_by_age_and_count(
    redis_url: str, settings: Settings, tmp_path: Path, rclient: redis.Redis
) -> None:
    now = int(time.time() * 1000)
    old = import_dead(settings, *(dead_record(dead_at=now - 40 * DAY_MS + i) for i in range(3)))
    recent = import_dead(settings, *(dead_record(dead_at=now - DAY_MS - i) for i in range(4)))
    export_dir = tmp_path / "archive"
    env = {
        "EVENTFWD_DEAD_LETTER_EXPORT_DIR": str(export_dir),
        "EVENTFWD_DEAD_LETTER_MAX_COUNT": "2",
    }
    dry = run(redis_url, "dead", "retention", "--dry-run", env=env)
    assert dry.output.splitlines() == [
        "3 dead letter(s) older than 30 days, 2 more over the limit of 2",
        f"would trim 5, exporting them to {export_dir} (dry run)",
    ]
    assert rclient.zcard("eventfwd:dead") == 7
    result = run(redis_url, "dead", "retention", env=env)
    [archive] = export_dir.iterdir()
    assert result.output.splitlines()[-1] == f"trimmed 5, exported first to {archive}"
    kept = [json.loads(x)["id"] for x in archive.read_text().splitlines()]
    assert kept == [*old, recent[3], recent[2]]  # oldest first
    assert rclient.zrange("eventfwd:dead", 0, -1) == [recent[1], recent[0]]
    assert rclient.hget("eventfwd:retention", "trimmed_total") == "5"
    assert rclient.hget("eventfwd:retention", "unexported_total") == "0"


def test_retention_without_an_export_dir_trims_and_warns_with_the_counts(
    settings: Settings, rclient: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    import_dead(settings, *(dead_record(reason="expired", status=None) for _ in range(3)))
    s = settings.replace(dead_letter_max_count=1)
    with caplog.at_level(logging.WARNING, logger="worker.retention"):
        result = enforce_retention(Ledger(redis.Redis.from_url(s.redis_url), s), s)
    assert (result.trimmed, result.exported, result.by_reason) == (2, 0, {"expired": 2})
    assert "trimmed 2 dead letter(s) WITHOUT keeping a copy" in caplog.text
    assert "expired=2" in caplog.text
    assert rclient.hget("eventfwd:retention", "unexported_total") == "2"


def test_retention_trims_nothing_when_the_export_cannot_be_written(
    settings: Settings, rclient: redis.Redis, tmp_path: Path
) -> None:
    import_dead(settings, dead_record(), dead_record())
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    s = settings.replace(dead_letter_max_count=1, dead_letter_export_dir=str(blocker / "sub"))
    result = enforce_retention(Ledger(redis.Redis.from_url(s.redis_url), s), s)
    assert result.trimmed == 0 and result.error and "nothing was trimmed" in result.error
    assert rclient.zcard("eventfwd:dead") == 2
    assert rclient.hget("eventfwd:retention", "last_error") == result.error
