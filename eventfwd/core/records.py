"""Reading the ledger for people: dead letters, single envelopes and fleet statistics.

Reads only; every change goes through the ledger. Dead letters are walked oldest first with a
cursor on their dead-at score, so a walk neither skips nor repeats an entry while other dead
letters are replayed or purged around it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from eventfwd.core.connection import text
from eventfwd.core.keys import Keys
from eventfwd.core.vocabulary import DeadReason

PAGE = 500
# Every reason a dead letter can carry.
DEAD_REASONS = tuple(reason.value for reason in DeadReason)

# What a dead-letter filter and a summary need of an envelope (HMGET; the body only for --grep).
_ROW_FIELDS = ("state", "platform", "reason", "last_status", "dead_ms", "last_message")


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
    replayed_ms: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of `eventfwd dead list --json`, `dead show --json` and `dead export`."""
        d = asdict(self)
        d["dead_at"] = d.pop("dead_ms")
        d["enqueued_at"] = d.pop("enqueued_ms")
        d["event_at"] = d.pop("event_ms")
        d["replayed_at"] = d.pop("replayed_ms")
        d["status"] = int(self.status) if self.status and self.status.isdigit() else None
        return d


@dataclass(frozen=True, slots=True)
class DeadRow:
    """The few fields of a dead letter that filters and counts need."""

    id: str
    platform_id: str
    reason: str
    status: str  # the last HTTP status as text; "" when there was none (timeout, no answer)
    dead_ms: int
    message: str = ""  # Moloco's message (truncated as stored)
    body: str = ""  # the event as sent; read only when a filter searches it


def status_matches(status: str, pattern: str) -> bool:
    """Does an HTTP status (text, "" for none) match `400`, `4xx` or `none`?"""
    if pattern == "none":
        return status == ""
    if pattern.endswith("xx"):
        return len(status) == 3 and status[0] == pattern[0]
    return status == pattern


# A dead-letter filter's last-status pattern: 400, 4xx, 5xx, or none (no answer).
STATUS_PATTERN = re.compile(r"none|[1-5](\d\d|xx)")


def window_problem(since_ms: int | None, until_ms: int | None) -> str | None:
    """What is wrong with a since/until window (a filter that could match nothing), or None."""
    if since_ms is not None and until_ms is not None and since_ms > until_ms:
        return "since is after until"
    return None


@dataclass(frozen=True, slots=True)
class DeadFilter:
    """Which dead letters an operator means: every given criterion must hold (sets: any of)."""

    platforms: frozenset[str] = frozenset()
    reasons: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()  # patterns for `status_matches`
    since_ms: int | None = None  # dead at or after
    until_ms: int | None = None  # dead at or before
    message: str | None = None  # substring of Moloco's message, any case
    grep: str | None = None  # substring of the event body as sent, exact case

    def matches(self, row: DeadRow) -> bool:
        if self.platforms and row.platform_id not in self.platforms:
            return False
        if self.reasons and row.reason not in self.reasons:
            return False
        if self.message and self.message.casefold() not in row.message.casefold():
            return False
        if self.grep and self.grep not in row.body:
            return False
        return not self.statuses or any(status_matches(row.status, p) for p in self.statuses)

    @property
    def selects_all(self) -> bool:
        return self == DeadFilter()


@dataclass(frozen=True, slots=True)
class DeadSummary:
    """Dead letters counted by platform, reason and HTTP status."""

    total: int
    by_platform: dict[str, int]
    by_reason: dict[str, int]
    by_status: dict[str, int]
    groups: list[dict[str, Any]]
    oldest_dead_ms: int | None
    newest_dead_ms: int | None
    complete: bool = True  # False when the scan stopped at its limit


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
        replayed_ms=_int(h.get("replayed_ms")) or None,
    )


class Records:
    """Read-side view of one ledger."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def now_ms(self) -> int:
        """The fleet's clock: Redis's (the Lua scripts stamp every time with it)."""
        seconds, micros = self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def _hgetall(self, ids: list[str]) -> list[Envelope]:
        pipe = self.client.pipeline(transaction=False)
        for event_id in ids:
            pipe.hgetall(self.keys.event(event_id))
        out = []
        for event_id, raw in zip(ids, pipe.execute(), strict=True):
            if raw:
                h = {text(k): text(v) for k, v in raw.items()}
                out.append(parse_envelope(event_id, h))
        return out

    def envelopes(self, ids: list[str]) -> list[Envelope]:
        """The envelopes of `ids` that exist (in any state), in order."""
        return self._hgetall(ids)

    def get(self, event_id: str) -> Envelope | None:
        found = self._hgetall([event_id])
        return found[0] if found else None

    # -- dead letters ------------------------------------------------------------------------

    def dead_id_pages(
        self, since_ms: int | None = None, until_ms: int | None = None, *, page: int = PAGE
    ) -> Iterator[list[str]]:
        """Pages of dead-letter ids, oldest first, dead between `since_ms` and `until_ms`.

        The cursor is the last score seen plus the ids already seen at exactly that score, so
        entries that leave the set meanwhile (replayed, purged) never shift the walk.
        """
        low: float | str = "-inf" if since_ms is None else since_ms
        high: float | str = "+inf" if until_ms is None else until_ms
        seen_at_low: set[str] = set()
        while True:
            want = page + len(seen_at_low)
            rows: list[tuple[Any, float]] = self.client.zrangebyscore(  # type: ignore[assignment]
                self.keys.dead, low, high, start=0, num=want, withscores=True
            )
            unseen = [
                (text(m), score)
                for m, score in rows
                if not (score == low and text(m) in seen_at_low)
            ]
            fresh = unseen[:page]
            if fresh:
                yield [m for m, _ in fresh]
                top = fresh[-1][1]
                if top != low:
                    low, seen_at_low = top, set()
                seen_at_low.update(m for m, score in fresh if score == top)
            if len(rows) < want and len(unseen) <= page:
                return

    def dead_rows(self, ids: list[str], *, with_body: bool = False) -> list[DeadRow]:
        """Light rows of those `ids` that are dead letters, in order (`with_body`: and bodies)."""
        fields = (*_ROW_FIELDS, "body") if with_body else _ROW_FIELDS
        pipe = self.client.pipeline(transaction=False)
        for event_id in ids:
            pipe.hmget(self.keys.event(event_id), fields)
        out = []
        for event_id, values in zip(ids, pipe.execute(), strict=True):
            state, platform, reason, status, dead_ms, message, *body = (
                text(v) if v else "" for v in values
            )
            if state == "dead":
                row = DeadRow(event_id, platform, reason, status, _int(dead_ms), message)
                out.append(dataclasses.replace(row, body=body[0]) if body else row)
        return out

    def dead_row_pages(
        self, flt: DeadFilter | None = None, *, until_ms: int | None = None, page: int = PAGE
    ) -> Iterator[list[DeadRow]]:
        """Pages of the dead letters `flt` selects (light rows), oldest first.

        `until_ms` caps the walk (e.g. at its start time, so that events which die again
        during a replay are not met a second time). Pages may be short or empty.
        """
        flt = flt or DeadFilter()
        high = _min_opt(flt.until_ms, until_ms)
        for ids in self.dead_id_pages(flt.since_ms, high, page=page):
            rows = self.dead_rows(ids, with_body=bool(flt.grep))
            yield [row for row in rows if flt.matches(row)]

    def dead_letters(
        self,
        flt: DeadFilter | None = None,
        *,
        platform_id: str | None = None,
        reason: str | None = None,
        limit: int | None = None,
    ) -> Iterator[Envelope]:
        """Whole dead letters `flt` selects, oldest first, at most `limit`."""
        flt = flt or DeadFilter()
        if platform_id:
            flt = dataclasses.replace(flt, platforms=frozenset({platform_id}))
        if reason:
            flt = dataclasses.replace(flt, reasons=frozenset({reason}))
        yielded = 0
        for rows in self.dead_row_pages(flt):
            for env in self._hgetall([r.id for r in rows]):
                if env.state != "dead":
                    continue
                yield env
                yielded += 1
                if limit is not None and yielded >= limit:
                    return

    def dead_summary(
        self, flt: DeadFilter | None = None, *, limit: int | None = None, by_message: bool = False
    ) -> DeadSummary:
        """Count the dead letters `flt` selects by platform, reason and status (scan `limit`).

        `by_message`: the groups are (platform, reason, status, Moloco's message).
        """
        groups: Counter[tuple[str, str, str]] = Counter()
        messages: Counter[tuple[str, str, str, str]] = Counter()
        oldest: int | None = None
        newest: int | None = None
        scanned, complete = 0, True
        flt = flt or DeadFilter()
        for ids in self.dead_id_pages(flt.since_ms, flt.until_ms):
            for row in self.dead_rows(ids, with_body=bool(flt.grep)):
                if not flt.matches(row):
                    continue
                groups[(row.platform_id, row.reason, row.status)] += 1
                if by_message:
                    messages[(row.platform_id, row.reason, row.status, row.message)] += 1
                oldest = row.dead_ms if oldest is None else min(oldest, row.dead_ms)
                newest = row.dead_ms if newest is None else max(newest, row.dead_ms)
            scanned += len(ids)
            if limit is not None and scanned >= limit:
                complete = False
                break
        by_platform: Counter[str] = Counter()
        by_reason: Counter[str] = Counter()
        by_status: Counter[str] = Counter()
        for (platform, reason, status), n in groups.items():
            by_platform[platform] += n
            by_reason[reason] += n
            by_status[status or "none"] += n
        return DeadSummary(
            total=sum(groups.values()),
            by_platform=dict(sorted(by_platform.items())),
            by_reason=dict(sorted(by_reason.items())),
            by_status=dict(sorted(by_status.items())),
            groups=[
                {
                    "platform_id": p,
                    "reason": r,
                    "status": int(s) if s.isdigit() else None,
                    "count": n,
                }
                for (p, r, s), n in sorted(groups.items())
            ]
            if not by_message
            else [
                {
                    "platform_id": p,
                    "reason": r,
                    "status": int(s) if s.isdigit() else None,
                    "message": m,
                    "count": n,
                }
                for (p, r, s, m), n in sorted(messages.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            oldest_dead_ms=oldest,
            newest_dead_ms=newest,
            complete=complete,
        )

    def dead_count(self) -> int:
        return int(self.client.zcard(self.keys.dead))

    # -- fleet -------------------------------------------------------------------------------

    def platforms(self, *, seen_within_s: float = 7 * 86400) -> list[str]:
        """Platforms with anything in the ledger, and those that had in the last days (the pump
        forgets a platform with nothing waiting; people still want to see it)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.smembers(self.keys.platforms)
        pipe.time()
        waiting, (seconds, _micros) = pipe.execute()
        since_ms = (int(seconds) - seen_within_s) * 1000
        recent = self.client.zrangebyscore(self.keys.seen, since_ms, "+inf")
        return sorted({text(p) for p in waiting} | {text(p) for p in recent})

    def stats(self) -> dict[str, Any]:
        """Backlog, dead letters and counters, fleet-wide and per platform."""
        platforms = self.platforms()
        pipe = self.client.pipeline(transaction=False)
        for p in platforms:
            pipe.zcard(self.keys.ready(p))
            pipe.zcard(self.keys.sched(p))
            pipe.zcard(self.keys.inflight(p))
            pipe.hgetall(self.keys.circuit(p))
            pipe.hget(self.keys.rate(p), "rate")
        pipe.zcard(self.keys.dead)
        pipe.hgetall(self.keys.stats)
        results = pipe.execute()
        per_platform: dict[str, Any] = {}
        backlog = 0
        for i, p in enumerate(platforms):
            ready, scheduled, in_flight, circuit, rate = results[5 * i : 5 * i + 5]
            n = int(ready) + int(scheduled) + int(in_flight)
            circuit = {text(k): text(v) for k, v in circuit.items()}
            backlog += n
            per_platform[p] = {
                "backlog": n,
                "circuit": circuit.get("state", "closed"),
                "circuit_reason": circuit.get("reason") if circuit.get("state") == "open" else None,
                "rate_per_s": float(rate) if rate else None,
            }
        dead, counters = results[-2], {text(k): int(v) for k, v in results[-1].items()}
        dead_by_reason = {k[5:]: v for k, v in counters.items() if k.startswith("dead:")}
        return {
            "backlog": backlog,
            "dead": dead,
            "dead_by_reason_total": dead_by_reason,
            "counters": {k: v for k, v in counters.items() if not k.startswith("dead:")},
            "platforms": per_platform,
        }


def _min_opt(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else min(a, b)
