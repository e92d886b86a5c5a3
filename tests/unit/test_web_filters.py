"""The console's dead-letter filter reads its fields by the CLI's rules (eventfwd.core.records)."""

from __future__ import annotations

import pytest

from eventfwd.web.filters import read_filter


def test_a_window_that_ends_before_it_starts_is_refused_like_the_cli_refuses_it() -> None:
    form = read_filter({"since": "2025-02-01T00:00", "until": "2025-01-01T00:00"})
    assert form.error == "since is after until"


STATUSES = [("400", True), ("4xx", True), ("None", True), ("600", False), ("4x", False)]


@pytest.mark.parametrize(("status", "ok"), STATUSES)
def test_status_patterns_match_the_clis(status: str, ok: bool) -> None:
    form = read_filter({"status": status})
    assert (form.error is None) is ok
    if ok:
        assert form.flt.statuses == frozenset([status.strip().lower()])


def test_a_good_filter_has_no_error() -> None:
    form = read_filter({"platform": "acme", "since": "2h", "message": " page_id "})
    assert form.error is None
    assert form.flt.platforms == frozenset(["acme"]) and form.flt.message == "page_id"
    assert form.flt.since_ms is not None
