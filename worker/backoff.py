"""Retry delays: Moloco's failure protocol (>= 5 s, then 10, 20, 40 s ...), jittered and capped."""

from __future__ import annotations

import random
from email.utils import parsedate_to_datetime
from time import time

JITTER_FRACTION = 0.25
MAX_RETRY_AFTER_S = 3_600.0


def retry_delay_s(
    attempt: int, *, base_s: float, max_s: float, rand: random.Random | None = None
) -> float:
    """Delay before retry number `attempt` (1 = the first retry).

    base * 2**(attempt-1), plus up to 25 % jitter so a fleet does not retry in step, capped at
    `max_s`; never below `base_s`, so the first retry waits at least the base (5 s by default).
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    exp = base_s * 2 ** min(attempt - 1, 32)
    jitter = (rand or random).uniform(0, JITTER_FRACTION) * exp
    return max(base_s, min(max_s, exp + jitter))


def parse_retry_after(value: str | None, *, now_s: float | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP date), capped; None if absent."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time() if now_s is None else now_s)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
