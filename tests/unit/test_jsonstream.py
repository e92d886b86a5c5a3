"""Reading JSON arrays and JSON lines a value at a time, with line numbers."""

from __future__ import annotations

import io
import json

import pytest

from eventfwd.cli import jsonstream
from eventfwd.cli.jsonstream import BadItem, read_items


@pytest.fixture(autouse=True)
def tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seven characters per read: every value and number straddles a chunk boundary."""
    monkeypatch.setattr(jsonstream, "CHUNK_CHARS", 7)


def items(text: str) -> list[tuple[int, object]]:
    return list(read_items(io.StringIO(text)))


def test_json_lines_give_each_value_its_line_and_skip_blank_lines() -> None:
    assert items('{"a": 1}\n\n  \n[2, 3]\n12345678901\n') == [
        (1, {"a": 1}),
        (4, [2, 3]),
        (5, 12345678901),
    ]


def test_a_broken_json_line_is_reported_and_the_next_ones_are_read() -> None:
    got = items('{"a": 1}\n{nope\n"last"')
    assert got[0] == (1, {"a": 1}) and got[2] == (3, "last")
    assert got[1][0] == 2 and isinstance(got[1][1], BadItem)
    assert got[1][1].message.startswith("not JSON (") and not got[1][1].fatal


def test_a_pretty_array_gives_the_line_each_value_starts_on() -> None:
    values = [{"n": 1, "x": [1, 2]}, {"n": 2}, 1234567890123, "s"]
    assert items(json.dumps(values, indent=2)) == [
        (2, values[0]),
        (9, values[1]),
        (12, values[2]),
        (13, values[3]),
    ]


def test_an_empty_input_or_array_gives_nothing() -> None:
    assert items("") == [] and items("  \n ") == [] and items(" [ ] ") == []


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('[\n{"a": 1},\n{oops}\n]', 3, "not JSON"),
        ('[{"a": 1}\n{"b": 2}]', 2, "expected ',' or ']'"),
        ('[{"a": 1},\n', 2, "not closed"),
        ("[1,\n2,\n]", 3, "not JSON"),
        ("[1]\n\n x", 3, "text after the closing ]"),
    ],
)
def test_a_broken_array_stops_with_a_fatal_error_at_its_line(
    text: str, line: int, message: str
) -> None:
    where, bad = items(text)[-1]
    assert isinstance(bad, BadItem) and bad.fatal
    assert (where, message in bad.message) == (line, True), bad.message


def test_the_reader_reports_how_much_it_read() -> None:
    seen: list[int] = []
    text = "\n".join(json.dumps({"i": i}) for i in range(20))
    assert len(list(read_items(io.StringIO(text), seen.append))) == 20
    assert sum(seen) == len(text)
