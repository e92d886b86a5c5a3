"""Beat's heartbeat: each pump run records a tick, so `doctor` and the metrics see beat alive.

The pump task (`worker/tasks.py`) calls `record_beat_tick(client, keys)` each time it runs; it
runs every `EVENTFWD_PUMP_INTERVAL_SECONDS` when beat is up and a worker takes the control
queue, so a fresh tick proves both.

    {p}:beat  hash  last_tick_ms (the worker's clock), ticks, host, pid; expires after a day
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import redis

from eventfwd.core.connection import text
from eventfwd.core.keys import Keys

TTL_S = 86_400


def beat_key(keys: Keys) -> str:
    return keys.beat


def record_beat_tick(client: redis.Redis, keys: Keys, *, now_ms: int | None = None) -> None:
    """Record one pump run (one MULTI round trip)."""
    key = beat_key(keys)
    pipe = client.pipeline(transaction=True)
    pipe.hset(
        key,
        mapping={
            "last_tick_ms": now_ms if now_ms is not None else int(time.time() * 1000),
            "host": socket.gethostname(),
            "pid": os.getpid(),
        },
    )
    pipe.hincrby(key, "ticks", 1)
    pipe.expire(key, TTL_S)
    pipe.execute()


@dataclass(frozen=True, slots=True)
class BeatTick:
    last_tick_ms: int
    ticks: int
    host: str
    pid: int


def read_beat(client: redis.Redis, keys: Keys) -> BeatTick | None:
    """The last tick recorded, or None when none was (not wired yet, or beat down a day)."""
    raw: dict[Any, Any] = client.hgetall(beat_key(keys))
    if not raw:
        return None
    h = {text(k): text(v) for k, v in raw.items()}
    return BeatTick(
        last_tick_ms=int(h.get("last_tick_ms", 0)),
        ticks=int(h.get("ticks", 0)),
        host=h.get("host", ""),
        pid=int(h.get("pid", 0)),
    )
