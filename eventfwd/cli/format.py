"""How the CLI reads times and filters and prints tables, ages and timestamps.

Times are shown in UTC (`2025-01-31T12:00:00Z`); `--since`/`--until` take the same form (a date,
a date and time, with or without an offset; without one it is UTC), epoch milliseconds (as in
the JSON output), or an age: `90s`, `15m`, `2h`, `7d`, `1w` ago.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click

from eventfwd.core.records import DEAD_REASONS, DeadFilter

# C0 and C1 controls and Unicode line breaks: escape codes and forged lines must not reach the
# operator's terminal from an id, a message or an imported record.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def now_ms() -> int:
    return int(time.time() * 1000)


def printable(text: object, *, keep_newlines: bool = False) -> str:
    """`text` with control characters written as escapes (`\\x1b`), fit for a terminal."""
    pattern = _CONTROL_BUT_NEWLINE if keep_newlines else _CONTROL
    return pattern.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


def iso(ms: object) -> str:
    """Epoch milliseconds as UTC ISO 8601, to the second; '-' for none; absurd values as given."""
    if not ms:
        return "-"
    try:
        return datetime.fromtimestamp(float(ms) / 1000, UTC).strftime(  # type: ignore[arg-type]
            "%Y-%m-%dT%H:%M:%SZ"
        )
    except (OverflowError, ValueError, OSError, TypeError):
        return f"{printable(ms)[:40]} (not a time)"


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


class _NoBar:
    def update(self, n: int) -> None:
        pass


@contextmanager
def progress(length: int | None, label: str) -> Iterator[Any]:
    """A progress bar on stderr when it is a terminal and the length is known; else nothing."""
    if length is None or not sys.stderr.isatty():
        yield _NoBar()
        return
    with click.progressbar(length=max(length, 1), label=label, file=sys.stderr) as bar:
        yield bar


def table(rows: list[list[str]], headers: list[str]) -> None:
    """Print left-aligned columns under `headers` (no trailing spaces), controls escaped."""
    rows = [[printable(c) for c in row] for row in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    for row in [headers, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


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


class When(click.ParamType):
    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_when(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class StatusPattern(click.ParamType):
    name = "STATUS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip().lower()
        if text == "none" or re.fullmatch(r"[1-5](\d\d|xx)", text):
            return text
        self.fail(
            f"{value!r} is not an HTTP status: use 400, 4xx, 5xx or none (no answer)", param, ctx
        )


def filter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --platform, --reason, --status, --since and --until (a `DeadFilter` as `flt`)."""
    options = [
        click.option(
            "--platform", "platforms", multiple=True, help="Only this platform (repeatable)."
        ),
        click.option(
            "--reason",
            "reasons",
            multiple=True,
            type=click.Choice(DEAD_REASONS),
            help="Only this reason (repeatable).",
        ),
        click.option(
            "--status",
            "statuses",
            multiple=True,
            type=StatusPattern(),
            help="Only this last HTTP status: 400, 4xx, 5xx, none (repeatable).",
        ),
        click.option("--since", type=When(), help="Dead at or after: 2h, 7d, 2025-01-31T12:00."),
        click.option("--until", type=When(), help="Dead at or before (same forms)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def make_filter(
    platforms: tuple[str, ...],
    reasons: tuple[str, ...],
    statuses: tuple[str, ...],
    since: int | None,
    until: int | None,
) -> DeadFilter:
    if since is not None and until is not None and since > until:
        raise click.BadParameter("--since is after --until", param_hint="'--since'")
    return DeadFilter(
        platforms=frozenset(platforms),
        reasons=frozenset(reasons),
        statuses=frozenset(statuses),
        since_ms=since,
        until_ms=until,
    )


def describe(flt: DeadFilter) -> str:
    """The filter in words, for confirmations and summaries."""
    parts = []
    if flt.platforms:
        parts.append("platform " + "/".join(sorted(flt.platforms)))
    if flt.reasons:
        parts.append("reason " + "/".join(sorted(flt.reasons)))
    if flt.statuses:
        parts.append("status " + "/".join(sorted(flt.statuses)))
    if flt.since_ms is not None:
        parts.append("dead since " + iso(flt.since_ms))
    if flt.until_ms is not None:
        parts.append("dead until " + iso(flt.until_ms))
    return ", ".join(parts) or "every dead letter"
