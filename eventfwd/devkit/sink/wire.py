"""Just enough HTTP/1.1 for the sink: an incremental request parser and response bytes.

Why not aiohttp: on the 2-core dev box a bare aiohttp handler spent ~200 µs of CPU per keep-alive
POST against ~100 µs for a plain `asyncio.Protocol`, and the sink shares those two cores with the
clients it measures. So the sink speaks HTTP itself, and only the subset its clients use:
keep-alive and pipelining, `Content-Length` or `chunked` bodies, `Expect: 100-continue`,
HTTP/1.0 with or without keep-alive. Upgrades are not supported and trailers are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024

_HEAD_END = b"\r\n\r\n"


@dataclass(slots=True)
class Request:
    """One parsed request; `too_large` means the body went over the limit and was dropped."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool
    http10: bool = False
    too_large: bool = False


class BadRequest(Exception):
    """The bytes on the connection are not a request the sink can read; the connection ends."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# Parser states.
_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _DISCARD = range(7)


class RequestParser:
    """Turn the bytes of one connection into `Request`s, in order."""

    def __init__(self, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self._max_body_bytes = max_body_bytes
        self._buf = bytearray()
        self._state = _HEAD
        self._pending: Request | None = None
        self._needed = 0  # body bytes still expected (content-length, chunk or discard)
        self._chunks: list[bytes] = []
        self._chunked_bytes = 0
        # Set when a head asked for `100 Continue` and its body has not arrived; the
        # connection answers it and clears the flag.
        self.continue_needed = False

    def feed(self, data: bytes) -> list[Request]:
        """Take more bytes; return every request they complete. Raise `BadRequest`."""
        buf = self._buf
        buf += data
        done: list[Request] = []
        while True:
            state = self._state
            if state == _HEAD:
                # An empty line before a request line is allowed (RFC 9112 §2.2).
                while buf[:2] == b"\r\n":
                    del buf[:2]
                end = buf.find(_HEAD_END)
                if end < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        raise BadRequest(431, "request head too large")
                    return done
                if end > MAX_HEAD_BYTES:
                    raise BadRequest(431, "request head too large")
                request, length, chunked = _parse_head(bytes(buf[:end]))
                del buf[: end + 4]
                if chunked:
                    self._start_body(request, _CHUNK_SIZE, 0)
                elif length > self._max_body_bytes:
                    request.too_large = True
                    done.append(request)
                    if request.headers.get("expect", "").lower() == "100-continue":
                        # The client waits for a go-ahead that never comes: no body will
                        # follow, so the connection cannot be resynchronised. Close it.
                        request.keep_alive = False
                    else:
                        # Answer 413 at once and drop the body as it comes, so the
                        # connection stays usable and the client reads the answer.
                        self._state, self._needed = _DISCARD, length
                elif len(buf) >= length:
                    request.body = bytes(buf[:length])
                    del buf[:length]
                    done.append(request)
                else:
                    self._start_body(request, _BODY, length)
            elif state == _BODY:
                if len(buf) < self._needed:
                    return done
                assert self._pending is not None
                self._pending.body = bytes(buf[: self._needed])
                del buf[: self._needed]
                done.append(self._finish_body())
            elif state == _DISCARD:
                dropped = min(self._needed, len(buf))
                del buf[:dropped]
                self._needed -= dropped
                if self._needed:
                    return done
                self._state = _HEAD
            elif state == _CHUNK_SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > 1024:
                        raise BadRequest(400, "malformed chunk size")
                    return done
                size_text = bytes(buf[:end]).split(b";", 1)[0].strip()
                del buf[: end + 2]
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise BadRequest(400, "malformed chunk size") from None
                if size < 0:
                    raise BadRequest(400, "malformed chunk size")
                self._chunked_bytes += size
                if self._chunked_bytes > self._max_body_bytes:
                    # Nothing sane to skip to in a chunked stream: answer and close.
                    raise BadRequest(413, f"request body larger than {self._max_body_bytes} bytes")
                self._state, self._needed = (_CHUNK_DATA, size) if size else (_TRAILER, 0)
            elif state == _CHUNK_DATA:
                if len(buf) < self._needed + 2:
                    return done
                if buf[self._needed : self._needed + 2] != b"\r\n":
                    raise BadRequest(400, "malformed chunk")
                self._chunks.append(bytes(buf[: self._needed]))
                del buf[: self._needed + 2]
                self._state = _CHUNK_SIZE
            else:  # _TRAILER: skip trailer lines up to the empty line
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        raise BadRequest(431, "request trailers too large")
                    return done
                del buf[: end + 2]
                if end == 0:
                    assert self._pending is not None
                    self._pending.body = b"".join(self._chunks)
                    done.append(self._finish_body())

    @property
    def buffered_bytes(self) -> int:
        """Bytes received and not yet turned into a request."""
        return len(self._buf)

    def _start_body(self, request: Request, state: int, needed: int) -> None:
        self._pending = request
        self._state = state
        self._needed = needed
        self._chunks = []
        self._chunked_bytes = 0
        if request.headers.get("expect", "").lower() == "100-continue":
            self.continue_needed = True

    def _finish_body(self) -> Request:
        request = self._pending
        assert request is not None
        self._pending = None
        self._state = _HEAD
        self._needed = 0
        self._chunks = []
        self.continue_needed = False
        return request


def _parse_head(head: bytes) -> tuple[Request, int, bool]:
    """Parse a request line and headers; return the request, its content length and chunkedness."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1]:
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(505, "HTTP version not supported")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, "malformed header line")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value

    length = 0
    chunked = False
    coding = headers.get("transfer-encoding")
    if coding is not None:
        if coding.lower() != "chunked":
            raise BadRequest(501, "unsupported transfer-encoding")
        if "content-length" in headers:
            raise BadRequest(400, "both content-length and transfer-encoding")
        chunked = True
    elif "content-length" in headers:
        if not headers["content-length"].isdigit():
            raise BadRequest(400, "malformed content-length")
        length = int(headers["content-length"])

    if target[0] != "/":
        # absolute-form (`http://host/path`): keep the path.
        rest = target.partition("://")[2]
        if not rest:
            raise BadRequest(400, "malformed request target")
        target = "/" + rest.partition("/")[2]
    path, _, query = target.partition("?")

    http10 = version == "HTTP/1.0"
    tokens = headers.get("connection", "").lower()
    keep_alive = "keep-alive" in tokens if http10 else "close" not in tokens
    request = Request(method, path, query, headers, b"", keep_alive, http10)
    return request, length, chunked


def response_bytes(
    status: int,
    body: bytes,
    *,
    keep_alive: bool = True,
    http10: bool = False,
    content_type: str = "application/json",
    headers: tuple[tuple[str, str], ...] = (),
    content_length: int | None = None,
) -> bytes:
    """Serialise a response; `content_length` may lie on purpose (truncated-body fault)."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [
        f"HTTP/1.1 {status} {reason}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body) if content_length is None else content_length}",
    ]
    lines.extend(f"{name}: {value}" for name, value in headers)
    if not keep_alive:
        lines.append("Connection: close")
    elif http10:
        lines.append("Connection: keep-alive")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
