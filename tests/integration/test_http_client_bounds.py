"""A hostile or broken Moloco cannot hold a POST past its deadline or make it read without end.

(issue #11, item 6)
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from worker.http_client import MESSAGE_MAX_CHARS, RESPONSE_MAX_BYTES, HttpClient

pytestmark = pytest.mark.integration


class RawServer:
    """One-connection-at-a-time loopback server whose answer is a function of the socket."""

    def __init__(self, answer: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.answer = answer
        self.sent = 0
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)  # the request (small enough to come in one read)
                self.requests += 1
                with contextlib.suppress(OSError):  # the client hung up: what we test
                    self.answer(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.listener.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/rmp/event/v1/platforms/acme/userevents"


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket], None]], RawServer]]:
    made: list[RawServer] = []

    def make(answer: Callable[[socket.socket], None]) -> RawServer:
        server = RawServer(answer)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


def test_a_trickled_200_ends_at_the_total_deadline_not_after_the_whole_body(
    raw_server: Callable[[Callable[[socket.socket], None]], RawServer],
) -> None:
    def trickle(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(100):  # 20 s in all, if the client let it
            conn.sendall(b" ")
            time.sleep(0.2)

    server = raw_server(trickle)
    client = HttpClient(timeout_s=1.0)
    started = time.monotonic()
    answer = client.post(server.url, "k", "{}")
    took_s = time.monotonic() - started
    client.close()
    assert answer.status == 200
    assert took_s < 1.0 + 1.5  # the deadline (read timeout + connect allowance), not 200 s
    assert server.requests == 1


def test_a_huge_error_body_is_read_only_up_to_the_cap(
    raw_server: Callable[[Callable[[socket.socket], None]], RawServer],
) -> None:
    total = 200 * 1024 * 1024
    chunk = b"x" * 65536

    def flood(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n" % total)
        for _ in range(total // len(chunk)):
            conn.sendall(chunk)
            server.sent += len(chunk)

    server = raw_server(flood)
    client = HttpClient(timeout_s=2.0)
    started = time.monotonic()
    answer = client.post(server.url, "k", "{}")
    client.close()
    assert time.monotonic() - started < 2.0
    assert answer.status == 400
    assert len(answer.message) <= MESSAGE_MAX_CHARS
    time.sleep(0.2)
    # The client stopped reading at the cap and dropped the connection (socket buffers aside).
    assert server.sent < RESPONSE_MAX_BYTES + 16 * 1024 * 1024
