from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.backoff import JITTER_FRACTION, parse_retry_after, retry_delay_s


def test_delays_follow_molocos_protocol_5_10_20_40_seconds() -> None:
    rand = random.Random(1)
    for attempt, floor in [(1, 5), (2, 10), (3, 20), (4, 40), (5, 80)]:
        delay = retry_delay_s(attempt, base_s=5, max_s=600, rand=rand)
        assert floor <= delay <= floor * (1 + JITTER_FRACTION)


@given(
    attempt=st.integers(min_value=1, max_value=200),
    base=st.floats(min_value=0.01, max_value=60),
    cap=st.floats(min_value=60, max_value=7200),
)
def test_delay_is_never_below_the_base_nor_above_the_cap(
    attempt: int, base: float, cap: float
) -> None:
    delay = retry_delay_s(attempt, base_s=base, max_s=cap)
    assert base <= delay <= cap


def test_attempt_counts_from_one() -> None:
    with pytest.raises(ValueError):
        retry_delay_s(0, base_s=5, max_s=10)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        ("2.5", 2.5),
        ("-3", 0.0),
        ("999999", 3600.0),
        ("soon", None),
    ],
)
def test_retry_after_seconds_are_parsed_and_capped(
    header: str | None, expected: float | None
) -> None:
    assert parse_retry_after(header) == expected


def test_retry_after_http_date_is_relative_to_now() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now_s=1445412480.0) == 10.0
