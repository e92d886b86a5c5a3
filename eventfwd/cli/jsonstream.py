"""Read JSON values one at a time from a JSON array or JSON lines, with the line each starts on.

A backfill file may hold millions of events, so nothing here keeps more than one value and a
read buffer in memory. A broken line of JSON lines is reported and skipped; a broken JSON array
cannot be resynchronised, so the error is fatal and the rest of the array is not read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

CHUNK_CHARS = 1 << 20
MAX_ITEM_CHARS = 16 << 20  # far above Moloco's 64 KiB event: a bound on a runaway value
_WS = re.compile(r"[ \t\n\r]*")


@dataclass(frozen=True, slots=True)
class BadItem:
    """A value that could not be read: why, and whether reading stopped there."""

    message: str
    fatal: bool = False


class _Reader:
    def __init__(self, stream: IO[str], on_read: Callable[[int], None] | None) -> None:
        self.stream = stream
        self.on_read = on_read
        self.eof = False

    def read(self) -> str:
        chunk = self.stream.read(CHUNK_CHARS)
        if not chunk:
            self.eof = True
        elif self.on_read is not None:
            self.on_read(len(chunk))
        return chunk


def read_items(
    stream: IO[str], on_read: Callable[[int], None] | None = None
) -> Iterator[tuple[int, Any]]:
    """Yield (line number, value or `BadItem`); `on_read(n)` is told of every n characters read."""
    reader = _Reader(stream, on_read)
    buf = ""
    while not buf.strip():
        if reader.eof:
            return
        buf += reader.read()
    if buf.lstrip().startswith("["):
        yield from _array(buf, reader)
    else:
        yield from _lines(buf, reader)


NESTED_TOO_DEEPLY = "nested too deeply to read (no event is nested like this)"


def _decode(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        return BadItem(f"not JSON ({exc.msg} at column {exc.colno})")
    except RecursionError:  # Python's parser recurses: a hostile line must not end the run
        return BadItem(NESTED_TOO_DEEPLY)


def _lines(buf: str, reader: _Reader) -> Iterator[tuple[int, Any]]:
    lineno = 0
    while True:
        *complete, buf = buf.split("\n")
        for line in complete:
            lineno += 1
            if line.strip():
                yield lineno, _decode(line)
        if reader.eof:
            break
        if len(buf) > MAX_ITEM_CHARS:
            lineno += 1
            yield lineno, BadItem(f"line longer than {MAX_ITEM_CHARS} characters")
            while "\n" not in buf and not reader.eof:
                buf = reader.read()
            buf = buf.partition("\n")[2]
            continue
        buf += reader.read()
    if buf.strip():
        yield lineno + 1, _decode(buf)


def _array(buf: str, reader: _Reader) -> Iterator[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    pos = buf.index("[") + 1
    line = 1 + buf.count("\n", 0, pos)
    expect_value, first = True, True
    while True:
        end = _WS.match(buf, pos).end()  # type: ignore[union-attr]
        line += buf.count("\n", pos, end)
        pos = end
        if pos >= len(buf):
            if reader.eof:
                yield line, BadItem("the JSON array is not closed with ]", fatal=True)
                return
            buf, pos = reader.read(), 0
            continue
        char = buf[pos]
        if char == "]" and (first or not expect_value):
            yield from _after_array(buf[pos + 1 :], line, reader)
            return
        if not expect_value:
            if char != ",":
                yield line, BadItem(f"expected ',' or ']' in the array, found {char!r}", fatal=True)
                return
            pos, expect_value = pos + 1, True
            continue
        try:
            value, end = decoder.raw_decode(buf, pos)
        except RecursionError:
            message = f"{NESTED_TOO_DEEPLY}; the rest of the array was not read"
            yield line, BadItem(message, fatal=True)
            return
        except json.JSONDecodeError as exc:
            if not reader.eof and len(buf) - pos <= MAX_ITEM_CHARS:
                buf, pos = buf[pos:] + reader.read(), 0
                continue
            where = line + buf.count("\n", pos, exc.pos)
            message = f"not JSON ({exc.msg}); the rest of the array was not read"
            yield where, BadItem(message, fatal=True)
            return
        if end >= len(buf) and not reader.eof:  # a number may go on in the next chunk
            buf, pos = buf[pos:] + reader.read(), 0
            continue
        yield line, value
        line += buf.count("\n", pos, end)
        pos, expect_value, first = end, False, False
        if pos > CHUNK_CHARS:
            buf, pos = buf[pos:], 0


def _after_array(rest: str, line: int, reader: _Reader) -> Iterator[tuple[int, Any]]:
    while not rest.strip() and not reader.eof:
        line += rest.count("\n")
        rest = reader.read()
    if rest.strip():
        where = line + rest[: len(rest) - len(rest.lstrip())].count("\n")
        yield where, BadItem("text after the closing ] of the array", fatal=True)
