"""Reading the ledger for people: dead letters, single envelopes and fleet statistics.

Reads only; every change goes through `core.ledger`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from core.keys import Keys

PAGE = 500


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event as the ledger holds it."""

    id: str
    platform_id: str
    state: str
    attempts: int
    replays: int
    enqueued_ms: int
    event_ms: int
    reason: str | None
    status: str | None
    message: str | None
    dead_ms: int | None
    event: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape `eventfwd dead list --json` prints."""
        d = asdict(self)
        d["dead_at"] = d.pop("dead_ms")
        d["enqueued_at"] = d.pop("enqueued_ms")
        d["event_at"] = d.pop("event_ms")
        d["status"] = int(self.status) if self.status and self.status.isdigit() else None
        return d


def _int(value: str | None) -> int:
    return int(float(value)) if value else 0


def parse_envelope(event_id: str, h: dict[str, str]) -> Envelope:
    history = [json.loads(line) for line in h.get("history", "").splitlines() if line.strip()]
    return Envelope(
        id=event_id,
        platform_id=h.get("platform", ""),
        state=h.get("state", ""),
        attempts=_int(h.get("attempts")),
        replays=_int(h.get("replays")),
        enqueued_ms=_int(h.get("enqueued_ms")),
        event_ms=_int(h.get("event_ms")),
        reason=h.get("reason") or None,
        status=h.get("last_status") or None,
        message=h.get("last_message") or None,
        dead_ms=_int(h.get("dead_ms")) or None,
        event=json.loads(h["body"]) if h.get("body") else {},
        history=history,
    )


class Records:
    """Read-side view of one ledger."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def _hgetall(self, ids: list[str]) -> list[Envelope]:
        pipe = self.client.pipeline(transaction=False)
        for event_id in ids:
            pipe.hgetall(self.keys.event(event_id))
        out = []
        for event_id, raw in zip(ids, pipe.execute(), strict=True):
            if raw:
                h = {_s(k): _s(v) for k, v in raw.items()}
                out.append(parse_envelope(event_id, h))
        return out

    def get(self, event_id: str) -> Envelope | None:
        found = self._hgetall([event_id])
        return found[0] if found else None

    def dead_letters(
        self,
        *,
        platform_id: str | None = None,
        reason: str | None = None,
        limit: int | None = None,
    ) -> Iterator[Envelope]:
        """Dead letters oldest first, filtered; pages through the set (rank-based)."""
        offset = yielded = 0
        while limit is None or yielded < limit:
            ids = [_s(i) for i in self.client.zrange(self.keys.dead, offset, offset + PAGE - 1)]
            if not ids:
                return
            offset += len(ids)
            for env in self._hgetall(ids):
                if env.state != "dead":
                    continue
                if platform_id and env.platform_id != platform_id:
                    continue
                if reason and env.reason != reason:
                    continue
                yield env
                yielded += 1
                if limit is not None and yielded >= limit:
                    return

    def dead_ids(self) -> list[str]:
        return [_s(i) for i in self.client.zrange(self.keys.dead, 0, -1)]

    def platforms(self) -> list[str]:
        return sorted(_s(p) for p in self.client.smembers(self.keys.platforms))

    def stats(self) -> dict[str, Any]:
        """Backlog, dead letters and counters, fleet-wide and per platform."""
        platforms = self.platforms()
        pipe = self.client.pipeline(transaction=False)
        for p in platforms:
            pipe.zcard(self.keys.sched(p))
            pipe.hgetall(self.keys.circuit(p))
            pipe.hget(self.keys.rate(p), "rate")
        pipe.zcard(self.keys.dead)
        pipe.hgetall(self.keys.stats)
        results = pipe.execute()
        per_platform: dict[str, Any] = {}
        backlog = 0
        for i, p in enumerate(platforms):
            n, circuit, rate = results[3 * i : 3 * i + 3]
            circuit = {_s(k): _s(v) for k, v in circuit.items()}
            backlog += n
            per_platform[p] = {
                "backlog": n,
                "circuit": circuit.get("state", "closed"),
                "circuit_reason": circuit.get("reason") if circuit.get("state") == "open" else None,
                "rate_per_s": float(rate) if rate else None,
            }
        dead, counters = results[-2], {_s(k): int(v) for k, v in results[-1].items()}
        dead_by_reason = {k[5:]: v for k, v in counters.items() if k.startswith("dead:")}
        return {
            "backlog": backlog,
            "dead": dead,
            "dead_by_reason_total": dead_by_reason,
            "counters": {k: v for k, v in counters.items() if not k.startswith("dead:")},
            "platforms": per_platform,
        }


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value
