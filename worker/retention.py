"""Dead-letter retention: an age limit and a count limit, export before trim (DESIGN.md §5).

The oldest dead letters go first: those dead longer than `EVENTFWD_DEAD_LETTER_RETENTION_DAYS`,
and as many more as the set holds beyond `EVENTFWD_DEAD_LETTER_MAX_COUNT`. With
`EVENTFWD_DEAD_LETTER_EXPORT_DIR` set, each page is appended to a JSON lines file there (the
`eventfwd dead export` format, so `eventfwd dead import` restores it) and synced to disk before
the page is purged; a file that cannot be written stops the run and nothing is purged. Without
it the trim still happens, logged as a warning with the counts: the count limit is what keeps
a `noeviction` Redis from filling up and refusing new events, and a dead letter past the age
limit (30 days by default, far beyond the event age limit) could only expire if replayed.

Every run leaves its result in `{p}:retention` (what `eventfwd doctor` and the metrics read).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from eventfwd.core.export import open_private, write_envelopes
from eventfwd.core.keys import Keys
from eventfwd.core.ledger import Ledger
from eventfwd.core.records import Records
from eventfwd.core.settings import Settings

log = logging.getLogger(__name__)

PAGE = 500
DAY_MS = 86_400_000
RUN_BUDGET_S = 30.0  # one run stops after this long; the next one goes on


def retention_key(keys: Keys) -> str:
    """`{p}:retention`: the last run's result and running totals (a hash)."""
    return keys.retention


@dataclass
class RetentionResult:
    over_age: int = 0  # dead longer than the retention days
    over_count: int = 0  # beyond the count limit, besides those
    trimmed: int = 0
    exported: int = 0
    export_path: str | None = None
    by_reason: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    more: bool = False  # the run's time budget ran out first
    dry_run: bool = False

    @property
    def due(self) -> int:
        return self.over_age + self.over_count


def enforce_retention(
    ledger: Ledger,
    settings: Settings,
    *,
    dry_run: bool = False,
    budget_s: float | None = RUN_BUDGET_S,
) -> RetentionResult:
    """Trim the dead letters over the age and count limits, exporting them first if set."""
    records = Records(ledger.client, ledger.keys)
    now_ms = records.now_ms()
    cutoff_ms = now_ms - int(settings.dead_letter_retention_days * DAY_MS)
    total = records.dead_count()
    over_age = int(ledger.client.zcount(ledger.keys.dead, "-inf", f"({cutoff_ms}"))
    due = max(over_age, total - settings.dead_letter_max_count)
    result = RetentionResult(over_age=over_age, over_count=due - over_age, dry_run=dry_run)
    if due <= 0 or dry_run:
        return result
    export_dir = settings.dead_letter_export_dir
    out: IO[str] | None = None
    if export_dir:
        stamp = datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y%m%dT%H%M%SZ")
        path = Path(export_dir) / f"dead-letters-{stamp}.jsonl"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            out = open_private(path)  # dead letters hold identifiers, IP, user agent
        except OSError as exc:
            result.error = f"cannot write {path}: {exc}; nothing was trimmed"
            log.error("dead-letter retention: %s", result.error)
            _record(ledger, result, now_ms)
            return result
        result.export_path = str(path)
    try:
        _trim(ledger, records, result, due, out, budget_s)
    except OSError as exc:
        result.error = f"export to {result.export_path} failed: {exc}; trimming stopped"
        log.error("dead-letter retention: %s", result.error)
    finally:
        if out is not None:
            out.close()
    _log(result, settings)
    _record(ledger, result, now_ms)
    return result


def _trim(
    ledger: Ledger,
    records: Records,
    result: RetentionResult,
    due: int,
    out: IO[str] | None,
    budget_s: float | None,
) -> None:
    reasons: Counter[str] = Counter()
    deadline = None if budget_s is None else time.monotonic() + budget_s
    left = due
    for ids in records.dead_id_pages(page=PAGE):
        ids = ids[:left]
        left -= len(ids)
        if out is not None:
            dead = [e for e in records.envelopes(ids) if e.state == "dead"]
            result.exported += write_envelopes(out, dead, sync=True)
        reasons.update(row.reason for row in records.dead_rows(ids))
        result.trimmed += ledger.purge(ids)
        if left <= 0:
            break
        if deadline is not None and time.monotonic() > deadline:
            result.more = True
            break
    result.by_reason = dict(sorted(reasons.items()))


def _log(result: RetentionResult, settings: Settings) -> None:
    counts = ", ".join(f"{k}={v}" for k, v in result.by_reason.items()) or "none"
    limits = (
        f"{result.over_age} dead over {settings.dead_letter_retention_days:g} days, "
        f"{result.over_count} over the limit of {settings.dead_letter_max_count}"
    )
    if result.export_path:
        log.info(
            "dead-letter retention: trimmed %d (%s; %s), exported to %s",
            result.trimmed,
            limits,
            counts,
            result.export_path,
        )
    else:
        log.warning(
            "dead-letter retention: trimmed %d dead letter(s) WITHOUT keeping a copy (%s; %s); "
            "set EVENTFWD_DEAD_LETTER_EXPORT_DIR to export them before they are trimmed",
            result.trimmed,
            limits,
            counts,
        )


def _record(ledger: Ledger, result: RetentionResult, now_ms: int) -> None:
    key = retention_key(ledger.keys)
    pipe = ledger.client.pipeline(transaction=True)
    pipe.hset(
        key,
        mapping={
            "last_run_ms": now_ms,
            "last_trimmed": result.trimmed,
            "last_exported": result.exported,
            "last_file": result.export_path or "",
            "last_error": result.error or "",
        },
    )
    pipe.hincrby(key, "trimmed_total", result.trimmed)
    pipe.hincrby(key, "unexported_total", max(0, result.trimmed - result.exported))
    pipe.execute()
