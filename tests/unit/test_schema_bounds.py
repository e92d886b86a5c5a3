"""Validation work is bounded by the size limit, whatever the input (issue #11, item 3)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from eventfwd.core.errors import MAX_REPORTED_ERRORS, InvalidEvent
from eventfwd.core.schema import MAX_EVENT_BYTES, validate_event, validate_events
from eventfwd.core.schema.clean import MAX_KEY_CHARS, suggestion
from tests.support.events import NOW_MS, minimal

# Generous for a busy shared 2-core box: the unbounded walks took seconds.
FAST_S = 0.5


def refused(event: Any) -> tuple[InvalidEvent, float]:
    started = time.perf_counter()
    with pytest.raises(InvalidEvent) as err:
        validate_event(event, now_ms=NOW_MS)
    return err.value, time.perf_counter() - started


def test_many_unknown_keys_are_refused_by_size_before_they_are_walked() -> None:
    event = minimal(**{f"x{i}": 1 for i in range(200_000)})
    exc, took_s = refused(event)
    assert took_s < FAST_S
    assert [e.rule for e in exc.errors] == ["max_size"]


def test_a_million_empty_items_are_refused_quickly_with_a_short_message() -> None:
    event = minimal(event_type="ADD_TO_CART", items=[{}] * 1_000_000)
    exc, took_s = refused(event)
    assert took_s < FAST_S
    assert len(str(exc)) < 2_000
    assert "max_size" in {e.rule for e in exc.errors}


def test_a_batch_refuses_an_oversized_event_by_its_index_without_walking_it() -> None:
    events = [minimal(), minimal(items=[{}] * 1_000_000)]
    started = time.perf_counter()
    with pytest.raises(InvalidEvent) as err:
        validate_events(events, now_ms=NOW_MS)
    assert time.perf_counter() - started < FAST_S
    assert err.value.index == 1


def test_deep_nesting_is_refused_without_recursion() -> None:
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep]
    exc, took_s = refused(minimal(extra=deep))
    assert took_s < FAST_S
    assert {e.rule for e in exc.errors} <= {"max_depth", "max_size"}


def test_field_errors_stop_at_a_fixed_number_with_a_more_errors_marker() -> None:
    # 2,000 broken values, well under the size limit: each one is an error of its own.
    event = minimal(event_type="ADD_TO_CART", items=[{"quantity": "many"}] * 2_000)
    assert len(json.dumps(event)) < MAX_EVENT_BYTES
    exc, _ = refused(event)
    assert len(exc.errors) == MAX_REPORTED_ERRORS + 1
    marker = exc.errors[-1]
    assert marker.rule == "more_errors"
    assert "more" in marker.message
    assert len(str(exc)) < 20_000
    # in a batch the count stays the same: the cut list is not cut again
    with pytest.raises(InvalidEvent) as batch:
        validate_events([minimal(), event])
    assert batch.value.index == 1
    assert [e.as_dict() for e in batch.value.errors] == [e.as_dict() for e in exc.errors]


def test_long_unknown_keys_are_refused_and_never_kept_by_the_typo_cache() -> None:
    suggestion.cache_clear()
    for n in range(40):
        key = f"k{n}" + "x" * 10_000
        exc, _ = refused(minimal(**{key: 1}))
        assert [e.rule for e in exc.errors] == ["max_length"]
        assert key not in str(exc)  # the message does not echo 10 KB back
    assert suggestion.cache_info().currsize == 0
    assert MAX_KEY_CHARS <= 256


def test_a_long_but_legal_extra_key_still_passes_through() -> None:
    key = "a_custom_field_" + "z" * 40
    valid = validate_event(minimal(**{key: "v"}), now_ms=NOW_MS)
    assert json.loads(valid.body)[key] == "v"


def test_subclasses_of_list_and_str_are_counted_too() -> None:
    class Items(list[Any]):
        pass

    class Text(str):
        pass

    exc, took_s = refused(minimal(extra=Items([{}] * 1_000_000)))
    assert took_s < FAST_S and exc.errors[0].rule == "max_size"
    exc, _ = refused(minimal(extra=[Text("x" * MAX_EVENT_BYTES)]))
    assert exc.errors[0].rule == "max_size"


def test_thousands_of_typo_like_keys_cost_a_bounded_number_of_typo_checks() -> None:
    from eventfwd.core.schema.clean import MAX_UNKNOWN_FIELDS

    suggestion.cache_clear()
    event = minimal(**{f"serach_query{i}": 1 for i in range(2_500)})
    assert len(json.dumps(event)) < MAX_EVENT_BYTES
    exc, took_s = refused(event)
    assert took_s < FAST_S
    assert "max_unknown_fields" in {e.rule for e in exc.errors}
    assert suggestion.cache_info().currsize <= MAX_UNKNOWN_FIELDS
