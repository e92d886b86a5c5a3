"""Dead letters and CLI runs for tests: `eventfwd ARGS` in-process, dead letters made three ways
(failed through the ledger, exported records, and imported through import.lua)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import redis
from click.testing import CliRunner, Result

from eventfwd.cli.main import cli
from eventfwd.core.export import Importer, ImportRow, parse_record
from eventfwd.core.keys import Keys
from eventfwd.core.ledger import Ledger
from eventfwd.core.settings import Settings
from producers import EventProducer
from tests.conftest import example_events
from tests.support.ledger import claim_one


def run(
    redis_url: str, *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> Result:
    """`eventfwd ARGS` in-process against `redis_url`, with `env` added to the environment."""
    env = {"EVENTFWD_REDIS_URL": redis_url, **(env or {})}
    return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)


def make_dead(settings: Settings, platform: str, reason: str, status: str, message: str) -> str:
    producer = EventProducer(settings=settings)
    event_id = producer.enqueue(platform, example_events()[0] | {"id": None})
    ledger = Ledger(redis.Redis.from_url(settings.redis_url), settings)
    claim_one(ledger, event_id)
    record = {
        "at_ms": 1,
        "status": int(status),
        "outcome": "x",
        "message": message,
        "duration_ms": 3,
    }
    ledger.dead(
        event_id,
        "t",
        reason=reason,
        status=status,
        message=message,
        record=record,
        count_attempt=True,
        answered=True,
    )
    return event_id


def dead_record(
    platform: str = "acme",
    reason: str = "rejected",
    status: int | None = 400,
    dead_at: int | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A dead letter as `dead export` writes it (for `dead import` and `Importer`)."""
    event = example_events()[0]
    event["id"] = fields.pop("id", None) or str(uuid.uuid4())
    return {
        "id": event["id"],
        "platform_id": platform,
        "reason": reason,
        "status": status,
        "message": f"HTTP {status}" if status else "timeout",
        "attempts": 1,
        "dead_at": dead_at or int(time.time() * 1000),
        "event": event,
        "history": [{"at_ms": 1, "status": status, "outcome": "x", "duration_ms": 2}],
        **fields,
    }


def import_dead(settings: Settings, *records: dict[str, Any]) -> list[str]:
    """Store `records` as dead letters through import.lua; return their ids."""
    client = redis.Redis.from_url(settings.redis_url)
    rows = [
        parse_record(r, settings, now_ms=int(time.time() * 1000), validate=True) for r in records
    ]
    assert all(isinstance(r, ImportRow) for r in rows), rows
    outcomes = Importer(client, Keys(settings.key_prefix)).write(rows, replace=False)  # type: ignore[arg-type]
    assert outcomes == [1] * len(rows)
    return [r["id"] for r in records]


def dead_ids(redis_url: str, *args: str) -> list[str]:
    """The ids `eventfwd dead list --json ARGS` prints, in its order."""
    result = run(redis_url, "dead", "list", "--json", *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line)["id"] for line in result.output.splitlines()]
