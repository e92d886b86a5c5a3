"""What an HTTP outcome means, as one pure function (DESIGN.md §4)."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    DELIVERED = "delivered"
    PERMANENT = "permanent"  # Moloco refused the payload: dead-letter at once, never auto-replay
    TRANSIENT = "transient"  # 5xx, timeout, connection error: retry with backoff
    THROTTLED = "throttled"  # 429: slow the platform down, retry without spending an attempt
    PLATFORM = "platform"  # 401, 403, 404: configuration; open the platform's circuit


# 408 and 425 say "try again"; every other 4xx is about the request itself.
_TRANSIENT_4XX = frozenset({408, 425})
_PLATFORM_4XX = frozenset({401, 403, 404})


def classify(status: int | None) -> Outcome:
    """Classify an HTTP status; `None` means no response (timeout, reset, refused)."""
    if status is None:
        return Outcome.TRANSIENT
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status == 429:
        return Outcome.THROTTLED
    if status in _PLATFORM_4XX:
        return Outcome.PLATFORM
    if status in _TRANSIENT_4XX or status >= 500:
        return Outcome.TRANSIENT
    if 400 <= status < 500:
        return Outcome.PERMANENT
    # 1xx and 3xx: Moloco sends neither; treat as a passing fault rather than lose the event.
    return Outcome.TRANSIENT


def circuit_reason(status: int) -> str:
    """Name why a platform-wide answer opened the circuit."""
    return "not_found" if status == 404 else "auth"
