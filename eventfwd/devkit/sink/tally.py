"""What the sink saw: counters, the latest accepted events and the optional record file.

Event ids are kept to count duplicates: a set of ids seen once plus a dict of ids seen more
than once, about 100 bytes an id, so a few million ids cost a few hundred MB. Past
`max_ids` new ids are no longer tracked (`ids_limit_reached` in the stats says so).
The newest `events_kept` accepted events (default 10,000, a few KB each at most) are kept in
memory for `events()`; the record file has them all. It is appended in JSON lines and flushed
by `flush()` (the server calls it every 200 ms and on stop), not on every event, so a busy sink
does not pay a syscall per event.
"""

from __future__ import annotations

import json
import time
from collections import deque
from pathlib import Path
from typing import Any, TextIO

EVENTS_KEPT = 10_000
MAX_IDS = 5_000_000
PLATFORMS_KEPT = 10_000
OTHER_PLATFORMS = "(other)"


class Tally:
    """Counters of API requests and accepted events; one loop thread writes them."""

    def __init__(
        self,
        record_path: Path | None = None,
        *,
        events_kept: int = EVENTS_KEPT,
        max_ids: int = MAX_IDS,
    ) -> None:
        self._record: TextIO | None = None
        if record_path is not None:
            self._record = open(record_path, "a", encoding="utf-8")  # noqa: SIM115
        self._dirty = False
        self._max_ids = max_ids
        self._recent: deque[dict[str, Any]] = deque(maxlen=events_kept)
        self.reset()

    def reset(self) -> None:
        """Zero every counter and forget recent events (the record file is kept)."""
        self.started_at_ms = int(time.time() * 1000)
        self.requests = 0
        self.accepted = 0
        self.accepted_without_id = 0
        self.by_status: dict[int, int] = {}
        self.by_fault: dict[str, int] = {}
        self.per_platform: dict[str, list[int]] = {}  # platform -> [requests, accepted]
        self._seen_once: set[str] = set()
        self._seen_again: dict[str, int] = {}  # id -> times accepted, for ids seen twice or more
        self._ids_limit_reached = False
        self._recent.clear()

    def count_request(self, platform: str | None) -> None:
        """Count one API request (anything outside /_sink/)."""
        self.requests += 1
        if platform is not None:
            self._platform(platform)[0] += 1

    def count_status(self, status: int) -> None:
        """Count one answer by its HTTP status."""
        self.by_status[status] = self.by_status.get(status, 0) + 1

    def count_fault(self, label: str) -> None:
        """Count one injected fault by its label (status code or kind)."""
        self.by_fault[label] = self.by_fault.get(label, 0) + 1

    def accept(self, platform: str, event: dict[str, Any], received_at_ms: int) -> None:
        """Record one accepted event: counters, recent events, record file."""
        self.accepted += 1
        self._platform(platform)[1] += 1
        event_id = event.get("id")
        if type(event_id) is not str or not event_id:
            self.accepted_without_id += 1
        elif event_id in self._seen_again:
            self._seen_again[event_id] += 1
        elif event_id in self._seen_once:
            self._seen_once.discard(event_id)
            self._seen_again[event_id] = 2
        elif len(self._seen_once) + len(self._seen_again) < self._max_ids:
            self._seen_once.add(event_id)
        else:
            self._ids_limit_reached = True
        record = {"platform_id": platform, "received_at_ms": received_at_ms, "event": event}
        self._recent.append(record)
        if self._record is not None:
            self._record.write(json.dumps(record) + "\n")
            self._dirty = True

    def snapshot(self) -> dict[str, Any]:
        """The counters as JSON-ready data."""
        unique_ids = len(self._seen_once) + len(self._seen_again)
        with_id = self.accepted - self.accepted_without_id
        return {
            "requests": self.requests,
            "by_status": {str(status): n for status, n in sorted(self.by_status.items())},
            "by_fault": dict(sorted(self.by_fault.items())),
            "accepted": self.accepted,
            "unique_ids": unique_ids,
            "duplicates": len(self._seen_again),
            "duplicate_deliveries": with_id - unique_ids if not self._ids_limit_reached else None,
            "accepted_without_id": self.accepted_without_id,
            "per_platform": {
                platform: {"requests": counts[0], "accepted": counts[1]}
                for platform, counts in sorted(self.per_platform.items())
            },
            "ids_limit_reached": self._ids_limit_reached,
            "started_at_ms": self.started_at_ms,
        }

    def recent(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The latest accepted events as recorded, newest last."""
        events = list(self._recent)
        return events if limit is None else events[max(len(events) - limit, 0) :]

    def flush(self) -> None:
        """Push recorded lines to the file if any are waiting."""
        if self._dirty and self._record is not None:
            self._record.flush()
            self._dirty = False

    def close(self) -> None:
        """Flush and close the record file."""
        if self._record is not None:
            self._record.flush()
            self._record.close()
            self._record = None

    def _platform(self, platform: str) -> list[int]:
        counts = self.per_platform.get(platform)
        if counts is None:
            if len(self.per_platform) >= PLATFORMS_KEPT:
                platform = OTHER_PLATFORMS
            counts = self.per_platform.setdefault(platform, [0, 0])
        return counts
