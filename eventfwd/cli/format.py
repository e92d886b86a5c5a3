"""How the CLI reads times and filters and prints tables, ages and timestamps.

Times are shown in UTC (`2025-01-31T12:00:00Z`); `--since`/`--until` take the same form (a date,
a date and time, with or without an offset; without one it is UTC), epoch milliseconds (as in
the JSON output), or an age: `90s`, `15m`, `2h`, `7d`, `1w` ago.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from eventfwd.core.records import DEAD_REASONS, STATUS_PATTERN, DeadFilter, window_problem
from eventfwd.core.schema.models import CONTROL_CHARS
from eventfwd.ops.timefmt import ago, iso, now_ms, parse_when, span

__all__ = ["ago", "iso", "now_ms", "parse_when", "printable", "span"]

# C0 and C1 controls and Unicode line breaks: escape codes and forged lines must not reach the
# operator's terminal from an id, a message or an imported record.
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: object, *, keep_newlines: bool = False) -> str:
    """`text` with control characters written as escapes (`\\x1b`), fit for a terminal."""
    pattern = _CONTROL_BUT_NEWLINE if keep_newlines else CONTROL_CHARS
    return pattern.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


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
        if STATUS_PATTERN.fullmatch(text):
            return text
        self.fail(
            f"{value!r} is not an HTTP status: use 400, 4xx, 5xx or none (no answer)", param, ctx
        )


def filter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --platform, --reason, --status, --since, --until, --message and --grep."""
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
        click.option(
            "--message",
            metavar="TEXT",
            help="Only those whose Moloco message contains TEXT (any case).",
        ),
        click.option(
            "--grep",
            metavar="TEXT",
            help="Only those whose event body (JSON as sent) contains TEXT (exact case).",
        ),
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
    message: str | None = None,
    grep: str | None = None,
) -> DeadFilter:
    if window_problem(since, until):
        raise click.BadParameter("--since is after --until", param_hint="'--since'")
    return DeadFilter(
        platforms=frozenset(platforms),
        reasons=frozenset(reasons),
        statuses=frozenset(statuses),
        since_ms=since,
        until_ms=until,
        message=message or None,
        grep=grep or None,
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
    if flt.message:
        parts.append(f"message containing {flt.message!r}")
    if flt.grep:
        parts.append(f"body containing {flt.grep!r}")
    return ", ".join(parts) or "every dead letter"
