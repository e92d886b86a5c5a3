"""When Redis cannot take an event: which errors mean "unavailable", and the outage circuit.

Both producers (threads and asyncio) share these rules. Without a spool an unavailable Redis is
retried for `ENQUEUE_BUDGET_S`, then `EnqueueError`. With a spool the producer gives up on Redis
after `FAILOVER_BUDGET_S` and spools instead; the outage circuit then sends the next requests of
this process straight to the spool for `OUTAGE_HOLD_S` (the drainer closes it as soon as Redis
answers), so an outage costs one request a fraction of a second, not every request.
"""

from __future__ import annotations

import time

import redis

from eventfwd.core.errors import EnqueueError

# Redis unreachable: give up after about a second in total, never hang a web request.
ENQUEUE_BUDGET_S = 1.0
# With a spool configured: fail over well within that.
FAILOVER_BUDGET_S = 0.3
OUTAGE_HOLD_S = 2.0
CONNECT_TIMEOUT_S = 0.25
SOCKET_TIMEOUT_S = 0.5
RETRY_PAUSE_S = (0.02, 0.05, 0.1, 0.2, 0.3)

# Error replies of a Redis that is up but will not take writes now (full, replica, persistence
# failing, busy): the same as unreachable for a producer. redis-py turns some codes into
# classes (dropping the code from the message) and leaves the others in the message.
_REFUSING_CLASSES = (
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.MasterDownError,
    redis.exceptions.TryAgainError,
)
_REFUSING_CODES = ("OOM", "READONLY", "MISCONF", "LOADING", "BUSY", "MASTERDOWN", "NOREPLICAS")


def is_retryable(exc: BaseException) -> bool:
    """True for errors worth another try within the budget (no answer, or a replica)."""
    return isinstance(exc, redis.ConnectionError | redis.TimeoutError | redis.ReadOnlyError)


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` says Redis is unreachable or refuses writes for now (spool it)."""
    if is_retryable(exc) or isinstance(exc, ConnectionError | TimeoutError):
        return True
    if isinstance(exc, _REFUSING_CLASSES):
        return True
    return isinstance(exc, redis.ResponseError) and str(exc).startswith(_REFUSING_CODES)


def give_up_error(exc: BaseException, count: int, url: str) -> EnqueueError:
    """The `EnqueueError` for events that Redis did not take (`url` already redacted)."""
    if is_retryable(exc):
        return EnqueueError(
            f"could not store {count} event(s): Redis at {url} unreachable "
            f"({type(exc).__name__}: {exc})"
        )
    return EnqueueError(f"Redis refused the enqueue: {exc}")


class RetryPlan:
    """After each failed try: the pause before the next, or None to stop trying Redis."""

    def __init__(self, budget_s: float) -> None:
        self._deadline = time.monotonic() + budget_s
        self._pauses = iter(RETRY_PAUSE_S)

    def pause_after(self, exc: BaseException) -> float | None:
        if not is_retryable(exc):
            return None
        pause = next(self._pauses, None)
        if pause is None or time.monotonic() + pause >= self._deadline:
            return None
        return pause


class OutageCircuit:
    """This process's belief that Redis is down: a deadline, no lock (a float store is atomic)."""

    def __init__(self) -> None:
        self._until = 0.0

    def is_open(self) -> bool:
        return time.monotonic() < self._until

    def open(self, hold_s: float = OUTAGE_HOLD_S) -> None:
        self._until = time.monotonic() + hold_s

    def close(self) -> None:
        self._until = 0.0
