"""One client connection: read requests in order and carry out each outcome.

Requests on a connection are answered strictly in order: while one is delayed (latency) or
hung, later pipelined requests wait, and reading pauses once too many are queued.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import deque
from collections.abc import Callable
from typing import cast

from eventfwd.devkit.sink.routes import Hang, Reply, SinkApp
from eventfwd.devkit.sink.wire import BadRequest, Request, RequestParser

MAX_QUEUED_REQUESTS = 64
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_LINGER_ZERO = struct.pack("ii", 1, 0)


class SinkProtocol(asyncio.Protocol):
    """asyncio protocol serving one connection of the sink."""

    def __init__(self, app: SinkApp, connections: set[SinkProtocol]) -> None:
        self._app = app
        self._connections = connections
        self._parser = RequestParser()
        self._queue: deque[Request | BadRequest] = deque()
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy = False
        self._paused = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._loop = asyncio.get_running_loop()
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._connections.discard(self)
        self._queue.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def data_received(self, data: bytes) -> None:
        if self._transport is None:
            return
        try:
            self._queue.extend(self._parser.feed(data))
        except BadRequest as error:
            self._queue.append(error)
            self._transport.pause_reading()  # nothing after unreadable bytes can be read
            self._paused = True
        self._drain()

    def close(self) -> None:
        """End the connection (server shutdown); a hung client sees it closed."""
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """End the connection now, dropping unsent bytes."""
        if self._transport is not None:
            self._transport.abort()

    def _drain(self) -> None:
        queue = self._queue
        while queue and not self._busy:
            transport = self._transport
            if transport is None or transport.is_closing():
                queue.clear()
                return
            item = queue.popleft()
            if isinstance(item, BadRequest):
                self._write(self._app.refuse(item))
                continue
            outcome = self._app.handle(item)
            if type(outcome) is Reply:
                if outcome.delay_s > 0:
                    self._busy = True
                    self._timer = self._call_later(outcome.delay_s, self._send_late, outcome)
                else:
                    self._write(outcome)
            elif type(outcome) is Hang:
                self._busy = True
                if outcome.hang_s is not None:
                    self._timer = self._call_later(outcome.hang_s, self._give_up)
            else:
                self._reset()
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._busy:
            if len(queue) >= MAX_QUEUED_REQUESTS and not self._paused:
                transport.pause_reading()
                self._paused = True
            return
        if self._paused:
            transport.resume_reading()
            self._paused = False
        if self._parser.continue_needed:
            self._parser.continue_needed = False
            transport.write(_CONTINUE)

    def _call_later(
        self, delay_s: float, callback: Callable[..., object], *args: object
    ) -> asyncio.TimerHandle:
        assert self._loop is not None
        return self._loop.call_later(delay_s, callback, *args)

    def _write(self, reply: Reply) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(reply.data)
        if reply.close:
            transport.close()

    def _send_late(self, reply: Reply) -> None:
        self._timer = None
        self._busy = False
        self._write(reply)
        self._drain()

    def _give_up(self) -> None:
        # A bounded hang ends like an upstream timeout: the connection closes, no answer.
        self._timer = None
        if self._transport is not None:
            self._transport.close()

    def _reset(self) -> None:
        transport = self._transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0 makes close() send RST instead of FIN: the client sees ECONNRESET.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        transport.abort()
