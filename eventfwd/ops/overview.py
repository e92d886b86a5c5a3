"""The console's overview: the fleet snapshot plus two hours of per-minute counts and Redis.

Per-minute counts come from the ledger's buckets (`{p}:minute:{n}`, `{p}:pminute:{platform}:{n}`,
kept two hours): delivered, retried and dead-lettered (every `dead:<reason>` summed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

from eventfwd.core.connection import text
from eventfwd.core.keys import Keys
from eventfwd.core.settings import Settings
from eventfwd.ops.platforms import Pause, pauses_of
from eventfwd.ops.snapshot import FleetStatus, snapshot
from worker.persistence import persistence_problems

CHART_MINUTES = 120
SERIES = ("delivered", "retried", "dead")
SCAN_LIMIT = 10_000  # backlog entries read per platform for states and ages


@dataclass
class Overview:
    snap: FleetStatus
    first_minute: int  # epoch minute of the first point
    total: dict[str, list[int]]  # series -> CHART_MINUTES points
    per_platform: dict[str, dict[str, list[int]]]
    last_hour: dict[str, dict[str, int]]  # platform -> delivered, failed, dead
    pauses: dict[str, Pause]
    redis: dict[str, Any] = field(default_factory=dict)


def _point(bucket: dict[Any, Any]) -> dict[str, int]:
    h = {text(k): int(v) for k, v in bucket.items()}
    return {
        "delivered": h.get("delivered", 0),
        "retried": h.get("retried", 0),
        "failed": h.get("failed", 0),
        "dead": sum(v for k, v in h.items() if k.startswith("dead:")),
    }


def read_overview(client: redis.Redis, settings: Settings) -> Overview:
    """Read everything the overview shows (a snapshot and two pipelines)."""
    keys = Keys(settings.key_prefix)
    snap = snapshot(client, settings, scan_limit=SCAN_LIMIT)
    pids = [p.platform_id for p in snap.platforms]
    now_minute = snap.now_ms // 60_000
    minutes = list(range(now_minute - CHART_MINUTES + 1, now_minute + 1))
    pipe = client.pipeline(transaction=False)
    for m in minutes:
        pipe.hgetall(keys.minute(m))
    for pid in pids:
        for m in minutes:
            pipe.hgetall(keys.platform_minute(pid, m))
    pipe.info("memory")
    pipe.info("persistence")
    results = pipe.execute()
    total_points = [_point(b) for b in results[: len(minutes)]]
    total = {s: [p[s] for p in total_points] for s in SERIES}
    per_platform: dict[str, dict[str, list[int]]] = {}
    last_hour: dict[str, dict[str, int]] = {}
    for i, pid in enumerate(pids):
        start = len(minutes) * (i + 1)
        points = [_point(b) for b in results[start : start + len(minutes)]]
        per_platform[pid] = {s: [p[s] for p in points] for s in SERIES}
        hour = points[-60:]
        last_hour[pid] = {k: sum(p[k] for p in hour) for k in ("delivered", "failed", "dead")}
    memory, persistence = results[-2], results[-1]
    info = {
        "used_memory_human": memory.get("used_memory_human"),
        "maxmemory_human": memory.get("maxmemory_human"),
        "aof_enabled": bool(persistence.get("aof_enabled")),
        "rdb_last_save_time": persistence.get("rdb_last_save_time"),
        "problems": persistence_problems(client),
    }
    return Overview(
        snap=snap,
        first_minute=minutes[0],
        total=total,
        per_platform=per_platform,
        last_hour=last_hour,
        pauses=pauses_of(snap.platforms),
        redis=info,
    )
