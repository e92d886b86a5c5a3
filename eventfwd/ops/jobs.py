"""Bulk replay and purge running in the background of a long-lived process (the console).

A job is `eventfwd.ops.bulk.run_pages` in a thread, with its progress kept in memory for the
page that shows it. Replays are paced (the platform rate by default) and join the schedule
behind live traffic; a purge writes each page to the export directory (when one is set) before
it deletes it, like `eventfwd dead purge --export`.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from eventfwd.core.ledger import Ledger
from eventfwd.ops.bulk import BulkResult, Pacer, Selection, purge_action, replay_action, run_pages

log = logging.getLogger(__name__)


@dataclass
class Job:
    id: str
    kind: str  # replay | purge
    by: str
    what: str  # the selection in words
    total: int
    started_ms: int
    result: BulkResult = field(default_factory=BulkResult)
    seen: int = 0  # ids handled so far (done + skipped)
    state: str = "running"  # running | done | failed
    finished_ms: int | None = None
    export_path: str | None = None
    error: str | None = None

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, round(100 * self.seen / self.total))


class Jobs:
    """The jobs of this process, newest first."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def start(
        self,
        kind: str,
        ledger: Ledger,
        selection: Selection,
        *,
        by: str,
        what: str,
        total: int,
        started_ms: int,
        rate_per_s: float = 0.0,
        export_dir: str | None = None,
        on_end: Callable[[Job], None] = lambda job: None,
    ) -> Job:
        """Start replaying or purging `selection` (dead letters up to `started_ms`)."""
        with self._lock:
            job = Job(f"{next(self._ids)}-{started_ms}", kind, by, what, total, started_ms)
            self._jobs[job.id] = job
        thread = threading.Thread(
            target=self._run,
            args=(job, ledger, selection, rate_per_s, export_dir, on_end),
            name=f"eventfwd-{kind}-{job.id}",
            daemon=True,
        )
        thread.start()
        return job

    def _run(
        self,
        job: Job,
        ledger: Ledger,
        selection: Selection,
        rate_per_s: float,
        export_dir: str | None,
        on_end: Callable[[Job], None],
    ) -> None:
        out: IO[str] | None = None
        try:
            if job.kind == "replay":
                act = replay_action(ledger)
            else:
                if export_dir:
                    path = Path(export_dir) / f"purge-{job.started_ms}-{job.id}.jsonl"
                    out = open(path, "a", encoding="utf-8")  # noqa: SIM115
                    job.export_path = str(path)
                act = purge_action(ledger, job.result, out)

            def progress(n: int) -> None:
                job.seen += n

            run_pages(
                ledger,
                selection,
                act,
                pacer=Pacer(rate_per_s if job.kind == "replay" else 0),
                started_ms=job.started_ms,
                result=job.result,
                on_page=progress,
            )
            job.state = "done"
        except Exception as exc:  # shown on the job's page; the pages done stay done
            log.exception("bulk %s %s failed", job.kind, job.id)
            job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            if out is not None:
                out.close()
            job.finished_ms = int(time.time() * 1000)
            on_end(job)
