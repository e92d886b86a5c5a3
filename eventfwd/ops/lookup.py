"""Where is event X? Dead, waiting, in flight, delivered (and when, how), or unknown.

A delivered event leaves the ledger; what stays is `{p}:done:{id}`, kept
`EVENTFWD_DELIVERED_TTL_SECONDS`: a hash (delivered_ms, attempts, status, rtt_ms, platform,
enqueued_ms), or the string "1" from older workers (delivered, no details).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from eventfwd.core.connection import text
from eventfwd.core.keys import Keys
from eventfwd.core.records import Envelope, Records
from eventfwd.core.vocabulary import TRANSIENT_REASONS


@dataclass(frozen=True, slots=True)
class Delivered:
    delivered_ms: int | None = None
    attempts: int | None = None
    status: str | None = None
    rtt_ms: int | None = None
    platform_id: str | None = None
    enqueued_ms: int | None = None

    @property
    def detailed(self) -> bool:
        return self.delivered_ms is not None


@dataclass(frozen=True, slots=True)
class Found:
    """What the ledger knows of one id."""

    id: str
    envelope: Envelope | None = None
    delivered: Delivered | None = None
    next_attempt_ms: int | None = None  # due (scheduled), lease deadline (in flight)

    @property
    def state(self) -> str:
        if self.envelope is not None:
            return self.envelope.state
        return "delivered" if self.delivered is not None else "unknown"

    def next_attempt(self) -> str:
        """The next attempt in words, without a clock (callers format `next_attempt_ms`)."""
        env = self.envelope
        if env is None:
            return "none"
        if env.state == "dead":
            if env.reason in TRANSIENT_REASONS:  # beat replays these (DESIGN.md §5)
                return "at beat's next dead-letter replay (while the circuit is closed)"
            return "none: waits for an operator's replay"
        if env.state == "inflight":
            return "being sent now (the time is its lease's end)"
        if env.state == "ready":
            return "as soon as a delivery engine is free, within the platform's rate and cap"
        return "scheduled"


def find(client: redis.Redis, keys: Keys, event_id: str) -> Found:
    """Look `event_id` up in the ledger and among the delivered markers."""
    env = Records(client, keys).get(event_id)
    if env is not None:
        where = {
            "scheduled": keys.sched,
            "queued": keys.sched,
            "inflight": keys.inflight,
        }.get(env.state)
        next_ms = None
        if env.state == "ready":
            next_ms = Records(client, keys).now_ms()
        elif where is not None and env.platform_id:
            score = client.zscore(where(env.platform_id), event_id)
            next_ms = int(score) if score is not None else None
        return Found(event_id, envelope=env, next_attempt_ms=next_ms)
    done = keys.done(event_id)
    kind = text(client.type(done))
    if kind == "hash":
        h = {text(k): text(v) for k, v in client.hgetall(done).items()}
        return Found(
            event_id,
            delivered=Delivered(
                delivered_ms=_int(h.get("delivered_ms")),
                attempts=_int(h.get("attempts")),
                status=h.get("status") or None,
                rtt_ms=_int(h.get("rtt_ms")),
                platform_id=h.get("platform") or None,
                enqueued_ms=_int(h.get("enqueued_ms")),
            ),
        )
    if kind == "string":
        return Found(event_id, delivered=Delivered())
    return Found(event_id)


def _int(value: str | None) -> int | None:
    return int(float(value)) if value else None
