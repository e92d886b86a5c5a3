"""Times, filters and durations as the CLI reads and prints them."""

from __future__ import annotations

import pytest

from eventfwd.cli.format import describe, iso, parse_when, span
from eventfwd.core.records import DeadFilter, DeadRow, status_matches

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("90s", NOW - 90_000),
        ("15m", NOW - 900_000),
        ("2h", NOW - 7_200_000),
        ("1.5d", NOW - 129_600_000),
        ("1w", NOW - 604_800_000),
        ("2026-01-01", NOW),
        ("2026-01-01T01:30", NOW + 5_400_000),
        ("2026-01-01T01:30:00+01:00", NOW + 1_800_000),
        ("2026-01-01T00:00:00Z", NOW),
        ("1767225600000", NOW),
    ],
)
def test_since_and_until_take_ages_utc_times_and_epoch_ms(text: str, ms: int) -> None:
    assert parse_when(text, now=NOW) == ms


@pytest.mark.parametrize("text", ["yesterday", "5 minutes", "-3h", "2026-13-01"])
def test_anything_else_is_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="use an age"):
        parse_when(text, now=NOW)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59, "59s"), (61, "1m 1s"), (600, "10m"), (3660, "1h 1m"), (90000, "1d 1h")],
)
def test_spans_read_like_people_write_them(seconds: float, text: str) -> None:
    assert span(seconds) == text


def test_times_are_printed_in_utc() -> None:
    assert iso(NOW) == "2026-01-01T00:00:00Z" and iso(None) == "-"


@pytest.mark.parametrize(
    ("status", "pattern", "matches"),
    [
        ("400", "400", True),
        ("400", "4xx", True),
        ("503", "4xx", False),
        ("", "none", True),
        ("", "5xx", False),
        ("429", "none", False),
    ],
)
def test_status_patterns(status: str, pattern: str, matches: bool) -> None:
    assert status_matches(status, pattern) is matches


def test_a_dead_filter_needs_every_criterion_and_any_value_of_each() -> None:
    flt = DeadFilter(
        platforms=frozenset({"a", "b"}),
        reasons=frozenset({"rejected"}),
        statuses=frozenset({"4xx"}),
    )
    assert flt.matches(DeadRow("1", "b", "rejected", "422", 0))
    assert not flt.matches(DeadRow("2", "c", "rejected", "422", 0))
    assert not flt.matches(DeadRow("3", "a", "expired", "422", 0))
    assert not flt.matches(DeadRow("4", "a", "rejected", "", 0))
    assert DeadFilter().selects_all and not flt.selects_all
    assert describe(flt) == "platform a/b, reason rejected, status 4xx"
