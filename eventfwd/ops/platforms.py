"""Operator actions on a platform, shared by `eventfwd platform|circuit` and the console.

Pause and resume go through the ledger (`Ledger.pause_platform`, `Ledger.resume_platform`): while
a platform is paused its events are kept and not sent; on resume they drain at its rate. The
state is the hash `{p}:pause:{platform}` (by, at_ms, reason), read here for people.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from eventfwd.core.errors import EventForwarderError
from eventfwd.core.keys import Keys
from eventfwd.core.ledger import Ledger


class NotAvailable(EventForwarderError):
    """This ledger cannot do that yet (an older version of the scripts)."""


@dataclass(frozen=True, slots=True)
class Pause:
    by: str
    at_ms: int
    reason: str


def pause_key(keys: Keys, platform_id: str) -> str:
    # `Keys.pause` arrives with the scheduler's pause; the same layout until then.
    method = getattr(keys, "pause", None)
    return method(platform_id) if method else f"{keys.prefix}:pause:{platform_id}"


def read_pauses(client: redis.Redis, keys: Keys, platforms: list[str]) -> dict[str, Pause]:
    """The paused platforms among `platforms` (one round trip)."""
    pipe = client.pipeline(transaction=False)
    for pid in platforms:
        pipe.hgetall(pause_key(keys, pid))
    out = {}
    for pid, raw in zip(platforms, pipe.execute(), strict=True):
        if raw:
            h = {_s(k): _s(v) for k, v in raw.items()}
            out[pid] = Pause(h.get("by", "?"), int(float(h.get("at_ms") or 0)), h.get("reason", ""))
    return out


def pause(ledger: Ledger, platform_id: str, *, by: str, reason: str = "") -> bool:
    """Pause a platform; True when it was not paused."""
    method = getattr(ledger, "pause_platform", None)
    if method is None:
        raise NotAvailable("this version of the ledger cannot pause a platform yet")
    return bool(method(platform_id, by=by, reason=reason))


def resume(ledger: Ledger, platform_id: str, *, by: str) -> bool:
    """Resume a paused platform; True when it was paused."""
    method = getattr(ledger, "resume_platform", None)
    if method is None:
        raise NotAvailable("this version of the ledger cannot resume a platform yet")
    return bool(method(platform_id, by=by))


def reset_circuit(ledger: Ledger, platform_id: str) -> None:
    """Close a platform's circuit; its parked events drain at its rate."""
    method = getattr(ledger, "reset_circuit", None)
    if method is not None:
        method(platform_id)
        return
    # Until the ledger has its own script for it: what `eventfwd circuit reset` always did.
    seconds, micros = ledger.client.time()
    ledger.client.hset(
        ledger.keys.circuit(platform_id),
        mapping={
            "state": "closed",
            "failures": 0,
            "closed_ms": int(seconds) * 1000 + int(micros) // 1000,
        },
    )


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
