"""A lock in Redis that says who holds it: one beat at a time, one retention or replay run.

The value of `{p}:lock:{name}` is JSON `{token, host, pid, since_ms}` and the key expires: a
holder that dies stops extending it and the lock frees itself after its time to live. Taking
and extending is one script (`lua/lock_take.lua`), releasing another (`lua/lock_release.lua`);
both compare the token, so a holder whose lock expired cannot extend or delete its successor's.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis

from eventfwd.core.ledger import script_source

log = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lock: `since_ms` is Redis's clock when they took it."""

    host: str
    pid: int
    since_ms: int
    token: str = ""

    def describe(self) -> str:
        return f"{self.host} (pid {self.pid})"


def parse_holder(value: Any) -> Holder | None:
    """A lock's value as a `Holder`; None for a value this module did not write."""
    try:
        raw = json.loads(value.decode() if isinstance(value, bytes) else value)
        return Holder(
            host=str(raw["host"]),
            pid=int(raw["pid"]),
            since_ms=int(raw["since_ms"]),
            token=str(raw["token"]),
        )
    except (TypeError, ValueError, KeyError):
        return None


def read_holder(client: redis.Redis, key: str) -> Holder | None:
    """Who holds the lock at `key` now, or None when nobody does."""
    value = client.get(key)
    return None if value is None else parse_holder(value)


class RedisLock:
    """One holder's handle on the lock at `key`, taken for `ttl_s` at a time."""

    def __init__(self, client: redis.Redis, key: str, *, ttl_s: float) -> None:
        self.client = client
        self.key = key
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.token = uuid.uuid4().hex
        self._take = client.register_script(script_source("lock_take"))
        self._release = client.register_script(script_source("lock_release"))

    def take(self) -> tuple[bool, Holder | None]:
        """Take the lock, or extend it if ours: (ours now, who holds it)."""
        ours, value = self._take(
            keys=[self.key], args=[self.token, self.ttl_ms, socket.gethostname(), os.getpid()]
        )
        return bool(int(ours)), parse_holder(value)

    def release(self) -> bool:
        """Give the lock up if it is still ours; say whether it was."""
        return bool(int(self._release(keys=[self.key], args=[self.token])))


def run_alone(lock: RedisLock, what: str, run: Callable[[], _T]) -> _T | None:
    """Run `run` while holding `lock`; skip it (None, logged) when another run holds it.

    The lock's time to live must outlast any run: the caller sets it to the run's hard limit.
    """
    ours, holder = lock.take()
    if not ours:
        log.info(
            "%s skipped: another run is in progress on %s",
            what,
            holder.describe() if holder else "an unknown holder",
        )
        return None
    try:
        return run()
    finally:
        lock.release()
