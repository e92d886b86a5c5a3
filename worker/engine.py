"""The delivery engine: one per worker process, it keeps the process's threads busy with whatever
the ledger has ready, by the scheduler's policy (DESIGN.md §3 rule 4).

A dispatcher thread loops: settle what completed (one ack per group), claim as many ready
events as threads are free (one `claim.lua` call: live before backlog, platforms in turn,
each within its rate and in-flight cap), hand them to the thread pool, wait. It wakes on a
completion, on the fleet's doorbell (a bell thread BLPOPs `{p}:bell` while threads are free:
enqueue rings it), or when the claim said something becomes claimable (a rate token, a pause).
So a web app's one-at-a-time enqueues fill the same waves as a batch, and a platform that
hangs holds at most its in-flight cap of threads.

Celery messages only wake engines (`worker/tasks.py`): lost, duplicated or stale ones are
harmless. An event claimed by a process that dies is recovered by its lease (the pump).
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import redis

from eventfwd.core.ledger import Ledger
from worker.delivery import Deliverer, Send
from worker.http_client import Response

log = logging.getLogger(__name__)

# Completions within this long share one ack, and the threads they free one claim, instead of
# a round trip each (at 1,000 events/s a process would otherwise make 2,000 script calls a
# second, each with a fixed cost in Redis). A quarter of the threads free refills at once.
COALESCE_S = 0.010
# With nothing else to wake it, an engine claims at least this often (its heartbeat too).
IDLE_CLAIM_S = 1.0
# The bell thread's BLPOP timeout.
BELL_WAIT_S = 1.0


class DeliveryEngine:
    """Claims, sends and settles; `start()` runs it in the background, `drain()` in the caller."""

    def __init__(
        self,
        deliverer: Deliverer,
        *,
        threads: int,
        bell: redis.Redis | None = None,
        name: str | None = None,
    ) -> None:
        """`bell`: a client for the doorbell's blocking pop (default: the ledger's client)."""
        self.deliverer = deliverer
        self.ledger: Ledger = deliverer.ledger
        self.threads = max(1, threads)
        self.engine_id = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._bell_client = bell or self.ledger.client
        self._pool = ThreadPoolExecutor(
            max_workers=self.threads, thread_name_prefix="eventfwd-post"
        )
        self._cv = threading.Condition()
        self._done: list[tuple[Send, Response]] = []
        self._done_since = 0.0
        # settle completions in groups: when this many are waiting, or COALESCE_S after the first
        self._settle_batch = max(1, self.threads // 4)
        self._woken = False
        self._in_flight = 0
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._tokens = itertools.count()

    # -- life cycle --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self) -> None:
        """Run the dispatcher and the bell listener in background threads (idempotent: a wake-up
        task and the start-up timer may both ask)."""
        with self._start_lock:
            if self.running:
                return
            self._stop.clear()
            # each in a context of its own: a Celery task that started the engine (a wake-up)
            # must not lend its Sentry scope, task id and all, to every report that follows
            self._threads = [
                threading.Thread(
                    target=contextvars.Context().run,
                    args=(target,),
                    name=name,
                    daemon=True,
                )
                for target, name in (
                    (self._serve, "eventfwd-dispatch"),
                    (self._listen, "eventfwd-bell"),
                )
            ]
            for thread in self._threads:
                thread.start()
        log.info("delivery engine %s started: %d threads", self.engine_id, self.threads)

    def stop(self, timeout_s: float) -> bool:
        """Claim nothing more, settle what is in flight; True when all of it was settled."""
        self._stop.set()
        self.wake()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        settled = not self.running
        if not settled:
            log.warning(
                "delivery engine %s stopped with %d event(s) in flight: their leases recover them",
                self.engine_id,
                self._in_flight,
            )
        return settled

    def wake(self) -> None:
        """Claim now (a wake-up message, a test)."""
        with self._cv:
            self._woken = True
            self._cv.notify_all()

    # -- the loop ----------------------------------------------------------------------------

    def drain(self, timeout_s: float = 30.0) -> dict[str, str]:
        """Deliver in the calling thread until nothing is claimable and nothing is in flight;
        return what happened to each event (for tests and the bench's profile)."""
        return self._loop(until_idle=True, timeout_s=timeout_s)

    def _serve(self) -> None:
        while not self._stop.is_set() or self._in_flight:
            try:
                self._loop(until_idle=False, timeout_s=None)
            except Exception:  # a Redis outage, a bug: keep the engine alive, try again soon
                log.exception("delivery engine %s: loop failed; retrying in 1s", self.engine_id)
                self._stop.wait(1.0)

    def _loop(self, *, until_idle: bool, timeout_s: float | None) -> dict[str, str]:
        outcomes: dict[str, str] = {}
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        next_claim = 0.0
        while True:
            stopping = self._stop.is_set()
            now = time.monotonic()
            with self._cv:
                woken, self._woken = self._woken, False
                done: list[tuple[Send, Response]] = []
                if self._done and (
                    stopping
                    or len(self._done) >= self._settle_batch
                    or now - self._done_since >= COALESCE_S
                ):
                    done, self._done = self._done, []
            if done:
                # their threads are free whatever the ledger says next: should recording fail
                # (Redis gone past the retry budget), the leases bring the events back
                self._in_flight -= len(done)
                outcomes.update(self.deliverer.settle(done))
                # refill at once when many threads are free, else with the next group
                many_free = self.threads - self._in_flight >= self._settle_batch
                next_claim = min(next_claim, now if many_free else now + COALESCE_S)
            if woken:
                # a ring: claim at once when idle (a lone web request's event goes out now),
                # else with the next group, so that a burst of rings shares one claim
                next_claim = min(next_claim, now if self._in_flight == 0 else now + COALESCE_S)
            free = self.threads - self._in_flight
            idle = False
            if not stopping and free > 0 and now >= next_claim:
                wave = self.ledger.claim(
                    self.engine_id,
                    f"{self.engine_id}:{next(self._tokens)}",
                    free,
                    idle_ms=int(IDLE_CLAIM_S * 1000),
                )
                for claim in wave.claims:
                    try:
                        prepared = self.deliverer.prepare(claim)
                    except Exception:  # Redis gone past the retry budget: its lease returns it
                        log.exception("event_id=%s could not be prepared", claim.event_id)
                        continue
                    if isinstance(prepared, str):
                        outcomes[claim.event_id] = prepared
                    else:
                        self._in_flight += 1
                        self._pool.submit(self._post, prepared)
                if wave.claims:
                    # more may be ready: look again once a few threads have freed up
                    next_claim = now + COALESCE_S
                else:
                    next_claim = now + wave.wait_ms / 1000
                    idle = wave.wait_ms >= IDLE_CLAIM_S * 1000
            if self._in_flight == 0 and (stopping or (until_idle and idle)):
                return outcomes
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"engine not idle after {timeout_s}s ({self._in_flight} out)")
            # stopping, or no thread free: no claim is due, only settles (or a wake-up)
            claiming = not stopping and self.threads > self._in_flight
            self._wait(next_claim if claiming else None)

    def _wait(self, claim_at: float | None) -> None:
        """Sleep until a settle is due, the next claim is due, or something wakes the loop."""
        with self._cv:
            if self._woken:
                return
            wake_at = [] if claim_at is None else [claim_at]
            if self._done:
                wake_at.append(self._done_since + COALESCE_S)
            timeout_s = min(wake_at, default=time.monotonic() + IDLE_CLAIM_S) - time.monotonic()
            if timeout_s > 0:
                self._cv.wait(min(timeout_s, IDLE_CLAIM_S))

    def _post(self, send: Send) -> None:
        started = time.monotonic()
        try:
            response = self.deliverer.post(send)
        except Exception as exc:  # the client reports failures as responses; this is a bug
            log.exception("event_id=%s POST raised", send.event_id)
            elapsed_ms = int((time.monotonic() - started) * 1000)
            response = Response(None, f"client error ({type(exc).__name__})", None, elapsed_ms)
        with self._cv:
            self._done.append((send, response))
            # wake the loop for the first completion of a group (it settles the group a moment
            # later, with whatever joined it) and when a group is large enough to settle now
            if len(self._done) == 1:
                self._done_since = time.monotonic()
                self._cv.notify_all()
            elif len(self._done) == self._settle_batch:
                self._cv.notify_all()

    def _listen(self) -> None:
        """Pop the fleet's doorbell while this engine has threads free, and wake the loop."""
        bell = self.ledger.keys.bell
        while not self._stop.is_set():
            with self._cv:
                if self._in_flight >= self.threads:
                    self._cv.wait(BELL_WAIT_S)
                    continue
            try:
                rang = self._bell_client.blpop([bell], timeout=BELL_WAIT_S)
            except redis.RedisError as exc:
                log.debug("bell: %s", exc)
                self._stop.wait(BELL_WAIT_S)
                continue
            if rang:
                self.wake()
                # the loop claims everything ready; rings in the meantime would add nothing
                self._stop.wait(COALESCE_S)
