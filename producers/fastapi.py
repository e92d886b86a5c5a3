"""FastAPI and Starlette: an `AsyncEventProducer` per app, created in the lifespan, as a dependency.

    from producers.fastapi import Producer, RequestDevice, eventfwd_lifespan, install_error_handlers

    app = FastAPI(lifespan=eventfwd_lifespan)
    install_error_handlers(app)

    @app.post("/events/{platform_id}", status_code=202)
    async def track(platform_id: str, event: dict, producer: Producer, device: RequestDevice):
        return {"id": await producer.enqueue(platform_id, with_device(event, device))}

Settings come from the environment (`EVENTFWD_*`, `./.env`) unless `eventfwd_lifespan` is
given some. The producer lives in `app.state.eventfwd`; plain Starlette code reaches it with
`producer_from(request)`. The error handlers answer `InvalidEvent` with 422
`{"errors": [...]}` and `EnqueueError` with 503. Needs the `fastapi` extra.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from eventfwd.core.errors import EnqueueError, InvalidEvent
from eventfwd.core.settings import Settings
from producers.aio import AsyncEventProducer
from producers.request_device import device_from, with_device

__all__ = [
    "MAX_BODY_BYTES",
    "Producer",
    "RequestDevice",
    "device_from_request",
    "eventfwd_lifespan",
    "install_error_handlers",
    "json_body",
    "lifespan_with",
    "producer_from",
    "with_device",
]

STATE_KEY = "eventfwd"
# Four times Moloco's 64 KiB event: room for a batch of a few events, not for a flood.
MAX_BODY_BYTES = 256 * 1024


@contextlib.asynccontextmanager
async def eventfwd_lifespan(app: Starlette) -> AsyncIterator[None]:
    """Create the app's producer (settings from the environment) and close it at shutdown."""
    async with lifespan_with(None)(app):
        yield


def lifespan_with(
    settings: Settings | None,
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    """A lifespan like `eventfwd_lifespan`, with these settings (None: the environment)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        producer = AsyncEventProducer(settings=settings)
        setattr(app.state, STATE_KEY, producer)
        try:
            yield
        finally:
            await producer.aclose()

    return lifespan


def producer_from(request: Request) -> AsyncEventProducer:
    """The app's producer (the lifespan must have run)."""
    producer: AsyncEventProducer = getattr(request.app.state, STATE_KEY)
    return producer


def device_from_request(request: Request) -> dict[str, str]:
    """Moloco `device` fields (ua, os, ip, language) of a request."""
    return device_from(
        request.headers.get("user-agent"),
        request.client.host if request.client else None,
        request.headers.get("accept-language"),
    )


async def json_body(request: Request, max_bytes: int = MAX_BODY_BYTES) -> Any:
    """The request's JSON, read at most `max_bytes` (413 beyond); None when it is not JSON.

    FastAPI reads a `dict` body parameter whole before any check; this stops at the limit, and
    leaves malformed JSON to validation (a 422 naming the problem, not a 400 of another shape).
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"the body is larger than {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise HTTPException(413, f"the body is larger than {max_bytes} bytes")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


Producer = Annotated[AsyncEventProducer, Depends(producer_from)]
RequestDevice = Annotated[dict[str, str], Depends(device_from_request)]


async def invalid_event_response(request: Request, exc: Exception) -> Response:
    """422 with every broken rule: `{"errors": [{"path", "rule", "message"}, ...]}`."""
    assert isinstance(exc, InvalidEvent)
    body: dict[str, Any] = {"errors": exc.as_dicts()}
    if exc.index is not None:
        body["index"] = exc.index
    return JSONResponse(body, status_code=422)


async def enqueue_error_response(request: Request, exc: Exception) -> Response:
    """503: the event was not stored (Redis down and no spool, or the spool full)."""
    return JSONResponse(
        {"error": "events are not being accepted right now, try again"}, status_code=503
    )


def install_error_handlers(app: Starlette | FastAPI) -> None:
    """Answer `InvalidEvent` with 422 and `EnqueueError` with 503, as JSON."""
    app.add_exception_handler(InvalidEvent, invalid_event_response)
    app.add_exception_handler(EnqueueError, enqueue_error_response)
