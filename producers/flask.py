"""Flask extension: one `EventProducer` per app, configured from `app.config` or the environment.

    from producers.flask import EventForwarder

    eventfwd = EventForwarder()

    def create_app():
        app = Flask(__name__)
        app.config["EVENTFWD_SPOOL_DIR"] = "/var/spool/eventfwd"   # or the environment
        eventfwd.init_app(app)
        return app

    @bp.post("/events/<platform_id>")
    def track(platform_id):
        return {"id": eventfwd.enqueue(platform_id, request.get_json())}, 202

`init_app` reads every `EVENTFWD_*` key of `app.config` over the environment and, unless
`json_errors=False`, answers `InvalidEvent` with 422 `{"errors": [...]}` and `EnqueueError`
with 503 `{"error": "..."}`. Needs the `flask` extra (`pip install 'eventfwd[flask]'`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flask import Flask, Response, current_app, has_request_context, jsonify, request

from eventfwd.core.errors import EnqueueError, InvalidEvent
from producers.config import settings_from
from producers.producer import EventProducer
from producers.request_device import device_from, with_device

EXTENSION_KEY = "eventfwd"


def device_from_request() -> dict[str, str]:
    """Moloco `device` fields (ua, os, ip, language) of the current request."""
    return device_from(
        request.user_agent.string or None,
        request.remote_addr,
        request.headers.get("Accept-Language"),
    )


def invalid_event_response(exc: InvalidEvent) -> tuple[Response, int]:
    """422 with every broken rule: `{"errors": [{"path", "rule", "message"}, ...]}`."""
    body: dict[str, Any] = {"errors": exc.as_dicts()}
    if exc.index is not None:
        body["index"] = exc.index
    return jsonify(body), 422


def enqueue_error_response(exc: EnqueueError) -> tuple[Response, int]:
    """503: the event was not stored (Redis down and no spool, or the spool full)."""
    return jsonify(error="events are not being accepted right now, try again"), 503


class EventForwarder:
    """The extension object; `init_app` it on one or more apps."""

    def __init__(self, app: Flask | None = None, *, json_errors: bool = True) -> None:
        self.json_errors = json_errors
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Create the app's producer from `app.config` and the environment."""
        producer = EventProducer(settings=settings_from(app.config))
        app.extensions[EXTENSION_KEY] = producer
        if self.json_errors:
            app.register_error_handler(InvalidEvent, invalid_event_response)
            app.register_error_handler(EnqueueError, enqueue_error_response)

    @property
    def producer(self) -> EventProducer:
        """The current app's producer."""
        producer: EventProducer = current_app.extensions[EXTENSION_KEY]
        return producer

    def _prepare(self, event: Mapping[str, Any], device: bool) -> Mapping[str, Any]:
        if device and has_request_context() and isinstance(event, Mapping):
            return with_device(event, device_from_request())
        return event

    def enqueue(
        self,
        platform_id: str,
        event: Mapping[str, Any],
        *,
        device: bool = True,
        id_namespace: str | None = None,
    ) -> str:
        """Enqueue one event; `device` fills its missing device fields from the request."""
        prepared = self._prepare(event, device)
        return self.producer.enqueue(platform_id, prepared, id_namespace=id_namespace)

    def enqueue_many(
        self,
        platform_id: str,
        events: Iterable[Mapping[str, Any]],
        *,
        device: bool = True,
        id_namespace: str | None = None,
    ) -> list[str]:
        """Enqueue events (one round trip per 500), each with the request's device fields."""
        prepared = [self._prepare(e, device) for e in events]
        return self.producer.enqueue_many(platform_id, prepared, id_namespace=id_namespace)
