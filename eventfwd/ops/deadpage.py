"""One page of dead letters, newest first, fast at any size (the console's list).

The cursor is the last row shown as `dead_ms:id`; the next page starts just after that id's
rank in `{p}:dead` (ZREVRANK, O(log n)), or, when it left the set meanwhile, after every entry
dead at or after its score. A filter that matches rarely is not allowed to walk a million
entries in one request: a page stops after `scan_limit` entries and says how far it got.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventfwd.core.records import DeadFilter, Envelope, Records

SCAN_LIMIT = 20_000
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class DeadPage:
    rows: list[Envelope]
    next_cursor: str | None  # None: nothing more
    scanned: int  # dead letters looked at for this page
    partial: bool  # stopped at scan_limit before the page was full


def parse_cursor(cursor: str | None) -> tuple[float, str] | None:
    if not cursor or ":" not in cursor:
        return None
    score, _, event_id = cursor.partition(":")
    try:
        return float(score), event_id
    except ValueError:
        return None


def _start_rank(records: Records, flt: DeadFilter, cursor: str | None) -> int:
    client, dead = records.client, records.keys.dead
    after = parse_cursor(cursor)
    if after is not None:
        score, event_id = after
        rank: Any = client.zrevrank(dead, event_id)
        if rank is not None and client.zscore(dead, event_id) == score:
            return int(rank) + 1
        return int(client.zcount(dead, score, "+inf"))
    if flt.until_ms is not None:
        return int(client.zcount(dead, f"({flt.until_ms}", "+inf"))
    return 0


def dead_page(
    records: Records,
    flt: DeadFilter | None = None,
    *,
    cursor: str | None = None,
    size: int = 50,
    scan_limit: int = SCAN_LIMIT,
) -> DeadPage:
    """Up to `size` dead letters that `flt` selects, newest first, after `cursor`."""
    flt = flt or DeadFilter()
    rank = _start_rank(records, flt, cursor)
    picked: list[str] = []
    last: str | None = None
    scanned = 0
    while True:
        entries: list[tuple[Any, float]] = records.client.zrevrange(  # type: ignore[assignment]
            records.keys.dead, rank, rank + _CHUNK - 1, withscores=True
        )
        if not entries:
            return _finish(records, picked, None, scanned, partial=False)
        ids: list[str] = []
        scores: dict[str, float] = {}
        for member, score in entries:
            if flt.since_ms is not None and score < flt.since_ms:
                break
            event_id = member.decode() if isinstance(member, bytes) else member
            ids.append(event_id)
            scores[event_id] = score
        matched = {r.id for r in records.dead_rows(ids, with_body=bool(flt.grep)) if flt.matches(r)}
        for event_id in ids:
            scanned += 1
            last = f"{int(scores[event_id])}:{event_id}"
            if event_id in matched:
                picked.append(event_id)
                if len(picked) == size:
                    return _finish(records, picked, last, scanned, partial=False)
        if len(ids) < len(entries):  # reached `since`
            return _finish(records, picked, None, scanned, partial=False)
        rank += len(entries)
        if scanned >= scan_limit:
            return _finish(records, picked, last, scanned, partial=True)


def _finish(
    records: Records, ids: list[str], cursor: str | None, scanned: int, *, partial: bool
) -> DeadPage:
    rows = [e for e in records.envelopes(ids) if e.state == "dead"]
    return DeadPage(rows=rows, next_cursor=cursor, scanned=scanned, partial=partial)
