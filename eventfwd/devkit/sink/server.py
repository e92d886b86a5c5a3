"""Run the sink: `SinkServer` on its own loop thread (tests, `eventfwd dev`), `run_sink` blocking.

with SinkServer() as sink:                      # port 0: a free port
    requests.post(f"{sink.url}/rmp/event/v1/platforms/p1/userevents", ...)
    sink.add_fault({"fault": 503, "count": 2})
    assert sink.stats()["accepted"] == 1
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from eventfwd.core.connection import url_host
from eventfwd.devkit.sink.faults import FaultPlan
from eventfwd.devkit.sink.protocol import SinkProtocol
from eventfwd.devkit.sink.routes import SinkApp
from eventfwd.devkit.sink.tally import EVENTS_KEPT, Tally

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 0.2
CALL_TIMEOUT_S = 10.0
CLOSE_WAIT_STEP_S = 0.01
CLOSE_WAIT_STEPS = 100
_T = TypeVar("_T")


class _Listener:
    """The listening socket, its open connections and the record flush timer, on one loop."""

    def __init__(self, app: SinkApp) -> None:
        self.app = app
        self.connections: set[SinkProtocol] = set()
        self._server: asyncio.Server | None = None
        self._flush_timer: asyncio.TimerHandle | None = None

    async def open(self, host: str, port: int) -> int:
        """Start listening; return the bound port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SinkProtocol(self.app, self.connections), host, port, backlog=1024
        )
        self._schedule_flush()
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        """Stop listening, end every connection, flush and close the record file."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close()
        # Let the closed transports run connection_lost (and so close their sockets).
        for _ in range(CLOSE_WAIT_STEPS):
            if not self.connections:
                break
            await asyncio.sleep(CLOSE_WAIT_STEP_S)
        for connection in list(self.connections):
            connection.abort()
        await asyncio.sleep(0)
        if self._server is not None:
            await self._server.wait_closed()
        self.app.tally.close()

    def _schedule_flush(self) -> None:
        self.app.tally.flush()
        self._flush_timer = asyncio.get_running_loop().call_later(
            FLUSH_EVERY_S, self._schedule_flush
        )


def build_app(
    *,
    api_key: str,
    platforms: Iterable[str] | None,
    record_path: str | Path | None,
    latency_ms: int = 0,
    faults: Iterable[Mapping[str, Any] | str] = (),
    log_answers: bool = False,
    events_kept: int = EVENTS_KEPT,
) -> SinkApp:
    """Assemble the sink's state; fault rules are validated here, before anything listens."""
    record = Path(record_path) if record_path is not None else None
    app = SinkApp(
        api_key=api_key,
        platforms=platforms,
        tally=Tally(record, events_kept=events_kept),
        plan=FaultPlan(),
        latency_ms=latency_ms,
        log_answers=log_answers,
    )
    for rule in faults:
        app.add_fault(rule)
    return app


class SinkServer:
    """A fake Moloco endpoint on its own event loop thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = "dev-key",
        platforms: Iterable[str] | None = None,
        record_path: str | Path | None = None,
        *,
        latency_ms: int = 0,
        faults: Iterable[Mapping[str, Any] | str] = (),
        log_answers: bool = False,
        events_kept: int = EVENTS_KEPT,
    ) -> None:
        self.host = host
        self.port = port
        self._app = build_app(
            api_key=api_key,
            platforms=platforms,
            record_path=record_path,
            latency_ms=latency_ms,
            faults=faults,
            log_answers=log_answers,
            events_kept=events_kept,
        )
        self._listener = _Listener(self._app)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:34567 (the real port once started)."""
        return f"http://{url_host(self.host)}:{self.port}"

    def start(self) -> SinkServer:
        """Listen on a daemon thread; return once connections are accepted."""
        if self._thread is not None or self._stopped:
            raise RuntimeError("a SinkServer starts once")
        started: concurrent.futures.Future[int] = concurrent.futures.Future()
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                started.set_result(
                    loop.run_until_complete(self._listener.open(self.host, self.port))
                )
            except BaseException as exc:
                started.set_exception(exc)
                loop.close()
                return
            loop.run_forever()
            loop.run_until_complete(self._listener.close())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="eventfwd-sink", daemon=True)
        self._thread.start()
        try:
            self.port = started.result(timeout=CALL_TIMEOUT_S)
        except BaseException:
            self._thread.join()
            self._thread = self._loop = None
            raise
        return self

    def stop(self) -> None:
        """Close every connection and the record file; wait for the loop thread to end."""
        if self._thread is None or self._loop is None:
            return
        self._stopped = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=CALL_TIMEOUT_S)
        self._thread = self._loop = None

    def stats(self) -> dict[str, Any]:
        """Counters, as GET /_sink/stats serves them."""
        return self._call(self._app.stats)

    def events(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The last `events_kept` accepted events (default 10,000) as recorded, newest last."""
        return self._call(lambda: self._app.tally.recent(limit))

    def faults(self) -> list[dict[str, Any]]:
        """The live fault rules, in decision order."""
        return self._call(self._app.plan.describe)

    def add_fault(self, rule: Mapping[str, Any] | str) -> dict[str, Any]:
        """Append a fault rule (JSON form or command-line grammar); return it with its id."""
        return self._call(lambda: self._app.add_fault(rule))

    def clear_faults(self) -> int:
        """Drop every fault rule; return how many there were."""
        return self._call(self._app.plan.clear)

    def reset(self) -> None:
        """Zero the counters, forget recent events, clear the fault plan."""
        self._call(self._app.reset)

    def flush(self) -> None:
        """Write recorded events to the record file now."""
        self._call(self._app.tally.flush)

    def __enter__(self) -> SinkServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _call(self, fn: Callable[[], _T]) -> _T:
        """Run `fn` on the loop thread, where the sink's state lives."""
        loop = self._loop
        if loop is None:
            return fn()
        done: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:
                done.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return done.result(timeout=CALL_TIMEOUT_S)


def run_sink(
    host: str = "127.0.0.1",
    port: int = 8090,
    api_key: str = "dev-key",
    platforms: Iterable[str] | None = None,
    record_path: str | Path | None = None,
    *,
    latency_ms: int = 0,
    faults: Iterable[Mapping[str, Any] | str] = (),
    log_answers: bool = False,
    key_source: str = "default",
    announce: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Serve until SIGTERM or SIGINT; announce the URL when ready; return the final counters."""
    app = build_app(
        api_key=api_key,
        platforms=platforms,
        record_path=record_path,
        latency_ms=latency_ms,
        faults=faults,
        log_answers=log_answers,
    )

    async def serve() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        listener = _Listener(app)
        bound = await listener.open(host, port)
        announce(f"sink listening on http://{url_host(host)}:{bound} (api key from {key_source})")
        for rule in app.plan.describe():
            log.info("fault rule %s", rule)
        await stopping.wait()
        await listener.close()
        return app.stats()

    return asyncio.run(serve())
