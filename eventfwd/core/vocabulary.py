"""The words Lua and Python share: states, lanes, claim and reschedule answers, dead-letter
reasons, circuit reasons and counter names. The Lua headers (`eventfwd/core/lua/`) list the
same strings; `tests/unit/test_vocabulary.py` checks that every one the scripts write is here.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """Where an envelope is in its life (DESIGN.md §3); `delivered` leaves only a done record."""

    READY = "ready"  # in {p}:ready:{platform}, claimable now
    SCHEDULED = "scheduled"  # in {p}:sched:{platform}: backoff, 429 pause, or parked (open circuit)
    INFLIGHT = "inflight"  # in {p}:inflight:{platform} under a lease
    DEAD = "dead"  # in {p}:dead
    QUEUED = "queued"  # written before the scheduler: read as scheduled


class Lane(StrEnum):
    """Live events (fresh ones and their retries) are claimed before the backlog."""

    LIVE = "live"
    BACKLOG = "backlog"  # replays, events parked during an outage


class Action(StrEnum):
    """What `reschedule` did with a claimed event."""

    RETRY = "retry"
    PARKED = "parked"
    DEAD = "dead"
    LOST = "lost"  # the lease was no longer ours: nothing changed


class RescheduleKind(StrEnum):
    TRANSIENT = "transient"  # 5xx, timeout, connection error
    THROTTLED = "throttled"  # 429
    BLOCKED = "blocked"  # platform-wide: 401/403/404 or no configuration


class DeadReason(StrEnum):
    """Why an event is a dead letter. Events are parked, not dead-lettered, while a circuit is
    open, so there is no 'circuit' reason."""

    REJECTED = "rejected"  # Moloco refused the payload (400, 413, 422)
    RETRIES_EXHAUSTED = "retries_exhausted"
    EXPIRED = "expired"
    POISON = "poison"  # the worker holding it died too often
    NOT_ALLOWED = "not_allowed"  # its platform is not in EVENTFWD_ALLOWED_PLATFORMS


# Beat replays these while the circuit is closed; the others wait for a person.
TRANSIENT_REASONS = (DeadReason.RETRIES_EXHAUSTED,)


class CircuitReason(StrEnum):
    OUTAGE = "outage"
    AUTH = "auth"
    NOT_FOUND = "not_found"
    CONFIG = "config"
    PROBE_DELIVERED = "probe_delivered"  # why it closed
    RESET = "reset"  # an operator closed it


class Counter(StrEnum):
    """Counter fields of {p}:stats, {p}:minute:{n}, {p}:pstats:{platform}, {p}:pminute:..."""

    ENQUEUED = "enqueued"
    DELIVERED = "delivered"
    FAILED = "failed"
    RETRIED = "retried"
    PARKED = "parked"
    THROTTLED = "throttled"
    REPLAYED = "replayed"
    PURGED = "purged"
    IMPORTED = "imported"
    PROBES = "probes"
    PAUSED = "paused"
    RESUMED = "resumed"
    CIRCUIT_OPENED = "circuit_opened"
    CIRCUIT_CLOSED = "circuit_closed"

    @staticmethod
    def dead(reason: DeadReason | str) -> str:
        return f"dead:{reason}"

    @staticmethod
    def failed_class(status_class: str) -> str:
        """failed:2xx .. failed:5xx, failed:none (no answer)."""
        return f"failed:{status_class}"
