"""Small holes found by trying the schema as an attacker would (issue #11, item 6)."""

from __future__ import annotations

from typing import Any

import pytest

from eventfwd.core.errors import InvalidEvent
from eventfwd.core.schema import validate_event, validate_events
from tests.support.events import DROP, NOW_MS
from tests.support.events import minimal as base_minimal


def minimal(**extra: Any) -> dict[str, Any]:
    """An event with no identifier unless a test gives one."""
    return base_minimal(**{"user_id": DROP, **extra})


def rules(event: Any) -> set[tuple[str, str]]:
    with pytest.raises(InvalidEvent) as err:
        validate_event(event, now_ms=NOW_MS)
    return {(e.path, e.rule) for e in err.value.errors}


@pytest.mark.parametrize(
    "identity",
    [
        {"user_id": "   "},
        {"custom_id": "\t\n"},
        {"device": {"persistent_id": " "}},
        {"user_id": " ", "custom_id": "\u3000"},
    ],
    ids=["user_id", "custom_id", "persistent_id", "two-blank"],
)
def test_a_whitespace_only_identifier_does_not_count(identity: dict[str, Any]) -> None:
    assert ("", "identifier_required") in rules(minimal(**identity))


def test_one_real_identifier_beside_a_blank_one_is_enough() -> None:
    validate_event(minimal(user_id=" ", custom_id="c-1"), now_ms=NOW_MS)


@pytest.mark.parametrize(
    "event_id",
    ["abc\nINFO forged log line", "a\rb", "\x1b[31mred\x1b[0m", "a\x00b", "a\u2028b", "a\x85b"],
)
def test_an_event_id_with_control_characters_is_refused_with_its_path(event_id: str) -> None:
    assert rules(minimal(user_id="u", id=event_id)) == {("id", "control_characters")}


def test_an_event_id_with_ordinary_punctuation_and_letters_is_fine() -> None:
    event_id = "order-42/line 1:é"
    assert validate_event(minimal(user_id="u", id=event_id), now_ms=NOW_MS).id == event_id


@pytest.mark.parametrize("events", [None, 7, "abc", {"a": 1}])
def test_validate_events_refuses_what_is_not_a_list_of_events(events: Any) -> None:
    with pytest.raises(InvalidEvent) as err:
        validate_events(events, now_ms=NOW_MS)
    assert err.value.errors[0].rule == "type"
    assert "list" in err.value.errors[0].message
