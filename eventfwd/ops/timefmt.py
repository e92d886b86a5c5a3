"""Times for people, shared by the CLI and the console: UTC ISO stamps, ages, and parsing.

Times are shown in UTC (`2025-01-31T12:00:00Z`); `parse_when` takes the same form (a date, a date
and time, with or without an offset; without one it is UTC), epoch milliseconds (as in the JSON
output), or an age: `90s`, `15m`, `2h`, `7d`, `1w` ago.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: object) -> str:
    """Epoch milliseconds as UTC ISO 8601, to the second; '-' for none; absurd values as given
    (an imported record may carry any number)."""
    if not ms:
        return "-"
    try:
        return datetime.fromtimestamp(float(ms) / 1000, UTC).strftime(  # type: ignore[arg-type]
            "%Y-%m-%dT%H:%M:%SZ"
        )
    except (OverflowError, ValueError, OSError, TypeError):
        text = "".join(c if c.isprintable() else "?" for c in str(ms))
        return f"{text[:40]} (not a time)"


def span(seconds: float) -> str:
    """A duration for people: 45s, 12m, 3h 20m, 2d 4h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m" + (f" {s % 60}s" if s < 600 and s % 60 else "")
    if s < 86400:
        return f"{s // 3600}h" + (f" {s % 3600 // 60}m" if s % 3600 // 60 else "")
    return f"{s // 86400}d" + (f" {s % 86400 // 3600}h" if s % 86400 // 3600 else "")


def ago(ms: int | None, now: int | None = None) -> str:
    if not ms:
        return "-"
    try:
        return span(((now or now_ms()) - ms) / 1000) + " ago"
    except (OverflowError, TypeError):
        return "-"


def parse_when(text: str, now: int | None = None) -> int:
    """`--since`/`--until` text as epoch milliseconds; ValueError says what is accepted."""
    text = text.strip()
    age = _AGE.match(text)
    if age:
        return (now or now_ms()) - int(float(age.group(1)) * _UNIT_S[age.group(2)] * 1000)
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use an age (15m, 2h, 7d), a UTC date and time "
            "(2025-01-31, 2025-01-31T12:00), or epoch milliseconds"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)
