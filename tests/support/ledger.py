"""Ledger helpers for tests: claim what is ready the way an engine would, count a backlog."""

from __future__ import annotations

from typing import Any

from eventfwd.core.keys import Keys
from eventfwd.core.ledger import Claim, Ledger


def claim_ready(ledger: Ledger, token: str = "t", max_events: int = 100) -> dict[str, Claim]:
    """Claim up to `max_events` ready events (by the scheduler's policy) under `token`."""
    return {c.event_id: c for c in ledger.claim("test-engine", token, max_events).claims}


def claim_one(ledger: Ledger, event_id: str, token: str = "t") -> Claim:
    """Claim the one ready event of the ledger, which must be `event_id`."""
    claims = claim_ready(ledger, token, max_events=1)
    assert list(claims) == [event_id], f"claimed {list(claims)}, expected {event_id}"
    return claims[event_id]


def backlog(client: Any, platform: str, prefix: str = "eventfwd") -> int:
    """Events of `platform` in the ledger, not delivered and not dead (ready, scheduled, in
    flight)."""
    keys = Keys(prefix)
    sets = (keys.ready(platform), keys.sched(platform), keys.inflight(platform))
    return sum(int(client.zcard(name)) for name in sets)
