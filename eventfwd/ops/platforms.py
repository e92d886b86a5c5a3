"""Operator actions on a platform, shared by `eventfwd platform|circuit` and the console.

Pause and resume go through the ledger (`Ledger.pause_platform`, `Ledger.resume_platform`): while
a platform is paused its events are kept and not sent; on resume they drain at its rate. The
state is the hash `{p}:pause:{platform}` (by, at_ms, reason), read here for people.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from eventfwd.core.connection import text
from eventfwd.core.keys import Keys
from eventfwd.core.ledger import Ledger
from eventfwd.core.vocabulary import CircuitReason
from eventfwd.ops.audit import record_action
from eventfwd.ops.snapshot import PlatformStatus
from worker.observability import report_circuit

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Pause:
    by: str
    at_ms: int
    reason: str


def parse_pause(raw: Mapping[Any, Any]) -> Pause | None:
    """A `{p}:pause:{platform}` hash as read (bytes or text); None when not paused."""
    if not raw:
        return None
    h = {text(k): text(v) for k, v in raw.items()}
    return Pause(h.get("by", "?"), int(float(h.get("at_ms") or 0)), h.get("reason", ""))


def pauses_of(platforms: Iterable[PlatformStatus]) -> dict[str, Pause]:
    """The pauses a snapshot already read (no round trip)."""
    found = {p.platform_id: parse_pause(p.paused) for p in platforms}
    return {pid: pause for pid, pause in found.items() if pause is not None}


def read_pauses(client: redis.Redis, keys: Keys, platforms: list[str]) -> dict[str, Pause]:
    """The paused platforms among `platforms` (one round trip)."""
    pipe = client.pipeline(transaction=False)
    for pid in platforms:
        pipe.hgetall(keys.pause(pid))
    found = {pid: parse_pause(raw) for pid, raw in zip(platforms, pipe.execute(), strict=True)}
    return {pid: pause for pid, pause in found.items() if pause is not None}


# Each action is recorded on the audit trail here, whichever front end (`source`) asked.


def pause(ledger: Ledger, platform_id: str, *, by: str, source: str, reason: str = "") -> bool:
    """Pause a platform; True when it was not paused."""
    changed = ledger.pause_platform(platform_id, by=by, reason=reason)
    _audit("pause", platform_id, changed, by, source)
    return changed


def resume(ledger: Ledger, platform_id: str, *, by: str, source: str) -> bool:
    """Resume a paused platform; True when it was paused."""
    changed = ledger.resume_platform(platform_id, by=by)
    _audit("resume", platform_id, changed, by, source)
    return changed


def reset_circuit(ledger: Ledger, platform_id: str, *, by: str, source: str) -> bool:
    """Close a platform's circuit (its parked events drain at its rate), reported like an
    automatic close; True when it was open."""
    closed = ledger.reset_circuit(platform_id)
    if closed:
        log.warning("platform=%s circuit closed: reset by an operator", platform_id)
        report_circuit(platform_id=platform_id, opened=False, reason=CircuitReason.RESET)
    _audit("reset", platform_id, closed, by, source)
    return closed


def _audit(action: str, platform_id: str, changed: bool, by: str, source: str) -> None:
    record_action(
        f"platform.{action}",
        by=by,
        count=int(changed),
        what=f"platform {platform_id}",
        source=source,
    )
