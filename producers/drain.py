"""Move spooled events into the ledger: once (`drain_spool`), or in the background (`SpoolDrainer`).

Draining keeps every event's id, so the ledger's idempotent enqueue makes a second drain of the
same batch (after a crash, or a stale claim taken over) a no-op for ids it holds or delivered.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from eventfwd.core.ledger import (
    ACCEPTED,
    ALREADY_DELIVERED,
    DUPLICATE,
    Ledger,
)
from producers.failover import OUTAGE_HOLD_S, OutageCircuit, is_unavailable
from producers.spool import Spool, SpoolCorrupt

log = logging.getLogger(__name__)

IDLE_POLL_S = 5.0
RETRY_MIN_S = 0.1
RETRY_MAX_S = 1.0


@dataclass
class DrainResult:
    """What one drain did: batches and events moved; duplicates were already in the ledger."""

    files: int = 0
    accepted: int = 0
    duplicates: int = 0
    already_delivered: int = 0
    corrupt_files: int = 0

    @property
    def events(self) -> int:
        return self.accepted + self.duplicates + self.already_delivered


def drain_spool(
    spool: Spool,
    ledger: Ledger,
    *,
    max_files: int | None = None,
    stop: threading.Event | None = None,
) -> DrainResult:
    """Enqueue every spooled batch this process can claim, oldest first.

    Redis errors propagate after the batch in hand went back to `ready/`.
    """
    result = DrainResult()
    spool.reclaim_stale()
    for name in spool.ready_names(max_files):
        if stop is not None and stop.is_set():
            break
        claimed = spool.claim(name)
        if claimed is None:
            continue  # another drainer has it
        try:
            rows = spool.read(claimed)
        except (SpoolCorrupt, OSError) as exc:
            log.error("spool: %s is unreadable (%s); moved to corrupt/", name, exc)
            spool.quarantine(claimed)
            result.corrupt_files += 1
            continue
        try:
            outcomes = ledger.enqueue(rows)  # in script calls of a bounded size
        except BaseException:
            spool.release(claimed)
            raise
        spool.done(claimed)
        result.files += 1
        result.accepted += outcomes.count(ACCEPTED)
        result.duplicates += outcomes.count(DUPLICATE)
        result.already_delivered += outcomes.count(ALREADY_DELIVERED)
    if result.files:
        log.info(
            "spool: drained %d event(s) from %d batch(es) (%d already in the ledger)",
            result.events,
            result.files,
            result.duplicates + result.already_delivered,
        )
    return result


_DRAINERS: weakref.WeakSet[SpoolDrainer] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for drainer in list(_DRAINERS):
        drainer._reset_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class SpoolDrainer:
    """A daemon thread that drains the spool whenever Redis answers; woken by each spooling.

    Started lazily (first `wake()` of a process), so a process that never spools starts no
    thread; after a fork the child starts its own on its first `wake()`. While the spool holds
    events and Redis does not answer it retries with capped, jittered backoff and keeps the
    outage circuit open; the first successful drain closes it.
    """

    def __init__(
        self,
        spool: Spool,
        ledger: Callable[[], Ledger],
        circuit: OutageCircuit,
        *,
        idle_poll_s: float = IDLE_POLL_S,
    ) -> None:
        self.spool = spool
        self._make_ledger = ledger
        self.circuit = circuit
        self.idle_poll_s = idle_poll_s
        self._reset_after_fork()
        _DRAINERS.add(self)

    def _reset_after_fork(self) -> None:
        # A lock or event copied mid-use from the parent could be held forever in the child.
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ledger: Ledger | None = None

    def wake(self) -> None:
        """Make sure the thread runs in this process and let it look at the spool now."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            with self._lock:
                if self._stop.is_set():
                    return
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._run, name="eventfwd-spool-drainer", daemon=True
                    )
                    self._thread.start()
        self._wake.set()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the thread (a batch in hand is finished or put back first)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def _run(self) -> None:
        delay_s, wait_s = RETRY_MIN_S, 0.0
        while not self._stop.is_set():
            self._wake.wait(wait_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                if not self.spool.has_work():
                    wait_s = self.idle_poll_s
                    continue
                if self._ledger is None:
                    self._ledger = self._make_ledger()
                self._ledger.client.ping()  # the probe: a drain may find nothing to claim
                drain_spool(self.spool, self._ledger, stop=self._stop)
            except Exception as exc:
                pause_s = delay_s * random.uniform(0.8, 1.2)
                if is_unavailable(exc):
                    self.circuit.open(OUTAGE_HOLD_S)
                    log.debug("spool: Redis still unavailable (%s)", type(exc).__name__)
                elif isinstance(exc, OSError):  # the directory itself: look again later
                    log.warning("spool: cannot use %s (%s)", self.spool.directory, exc)
                    pause_s = self.idle_poll_s
                else:
                    log.exception("spool: drain failed; retrying")
                # Spooling wakes us, but only the backoff decides when to try Redis again.
                if self._stop.wait(pause_s):
                    return
                delay_s, wait_s = min(delay_s * 2, RETRY_MAX_S), 0.0
                continue
            self.circuit.close()
            delay_s = RETRY_MIN_S
            # Look again at once when batches were spooled while we drained.
            wait_s = 0.0 if self.spool.ready_names(1) else self.idle_poll_s
