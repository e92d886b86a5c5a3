"""Replay and purge many dead letters: page by page, paced, and safe to interrupt.

Each page is one atomic ledger script (`replay.lua`, `purge.lua`), so an event is always either
still a dead letter or wholly moved. Ctrl-C is held back while a page's script is in flight
(at most one socket timeout) and acted on between pages, so the counts reported are exact.
A walk by filter stops at the time it started: an event that dies again during a replay is
not met a second time.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from eventfwd.core.export import write_envelopes
from eventfwd.core.ledger import Ledger
from eventfwd.core.records import DeadFilter, Records

PAGE = 500
_sleep = time.sleep


@dataclass
class BulkResult:
    done: int = 0  # replayed or purged
    skipped: int = 0  # not (or no longer) dead letters
    exported: int = 0
    interrupted: bool = False


@dataclass(frozen=True, slots=True)
class Selection:
    """Either explicit ids or a filter (with an optional limit)."""

    ids: tuple[str, ...] = ()
    flt: DeadFilter | None = None
    limit: int | None = None

    def pages(self, records: Records, *, page: int, until_ms: int) -> Iterator[list[str]]:
        """Pages of ids to act on, oldest first (explicit ids in the order given)."""
        if self.flt is None:
            for start in range(0, len(self.ids), page):
                yield list(self.ids[start : start + page])
            return
        left = self.limit
        for rows in records.dead_row_pages(self.flt, until_ms=until_ms, page=page):
            ids = [r.id for r in rows][:left]
            if ids:
                yield ids
            if left is not None:
                left -= len(ids)
                if left <= 0:
                    return

    def count(self, records: Records, *, until_ms: int) -> int:
        if self.flt is None:
            return len(self.ids)
        until = until_ms if self.flt.until_ms is None else min(self.flt.until_ms, until_ms)
        total = records.dead_summary(dataclasses.replace(self.flt, until_ms=until)).total
        return total if self.limit is None else min(total, self.limit)


class Pacer:
    """At most `rate_per_s` items per second on average (0: no limit)."""

    def __init__(self, rate_per_s: float, sleep: Callable[[float], None] | None = None) -> None:
        self.rate_per_s = rate_per_s
        self.sleep = sleep if sleep is not None else _sleep
        self._next_at = time.monotonic()

    def page_size(self, most: int = PAGE) -> int:
        return most if not self.rate_per_s else max(1, min(most, int(self.rate_per_s)))

    def wait(self, n: int) -> None:
        """Sleep until `n` more items fit under the rate."""
        if not self.rate_per_s:
            return
        now = time.monotonic()
        if self._next_at > now:
            self.sleep(self._next_at - now)
        self._next_at = max(self._next_at, now) + n / self.rate_per_s


@contextmanager
def held_interrupts() -> Iterator[None]:
    """Hold Ctrl-C back for the duration (main thread only); raise it afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda *args: caught.append(args))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def run_pages(
    ledger: Ledger,
    selection: Selection,
    act: Callable[[list[str]], tuple[int, int]],
    *,
    pacer: Pacer,
    started_ms: int,
    result: BulkResult | None = None,
    on_page: Callable[[int], None] = lambda n: None,
) -> BulkResult:
    """Apply `act` (ids -> (done, skipped)) to each page; stop cleanly on Ctrl-C.

    A walk by filter covers dead letters up to `started_ms` (Redis's clock at the start).
    """
    records = Records(ledger.client, ledger.keys)
    result = result or BulkResult()
    try:
        for ids in selection.pages(records, page=pacer.page_size(), until_ms=started_ms):
            pacer.wait(len(ids))
            with held_interrupts():
                done, skipped = act(ids)
                result.done += done
                result.skipped += skipped
            on_page(len(ids))
    except KeyboardInterrupt:
        result.interrupted = True
    return result


def replay_action(ledger: Ledger) -> Callable[[list[str]], tuple[int, int]]:
    """An operator's replay: any reason, no replay cap (`ledger.replay`)."""
    return lambda ids: ledger.replay(ids, max_replays=0)


def purge_action(
    ledger: Ledger, result: BulkResult, export_to: IO[str] | None = None
) -> Callable[[list[str]], tuple[int, int]]:
    """Purge a page; with `export_to`, write its dead letters there (synced) first."""
    records = Records(ledger.client, ledger.keys)

    def act(ids: list[str]) -> tuple[int, int]:
        if export_to is not None:
            dead = [e for e in records.envelopes(ids) if e.state == "dead"]
            result.exported += write_envelopes(export_to, dead, sync=True)
        purged = ledger.purge(ids)
        return purged, len(ids) - purged

    return act
