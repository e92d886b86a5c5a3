"""Flask example: `POST /events/<platform_id>` → 202 `{"id": ...}`, or 422 `{"errors": [...]}`.

Run it with the whole stack behind it (Redis, a worker, the fake Moloco): `examples/run flask`.
Settings come from `app.config` (any `EVENTFWD_*` name) or the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, request

from producers.flask import EventForwarder

# init_app also answers InvalidEvent with 422 {"errors": [{"path", "rule", "message"}, ...]}
# and EnqueueError with 503 (EventForwarder(json_errors=False) leaves that to you).
eventfwd = EventForwarder()


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(config or {})  # e.g. {"EVENTFWD_SPOOL_DIR": "/var/spool/eventfwd"}
    eventfwd.init_app(app)

    @app.get("/")
    def index() -> dict[str, Any]:
        return {"post_events_to": "/events/<platform_id>"}

    @app.post("/events/<platform_id>")
    def track(platform_id: str) -> tuple[dict[str, Any], int]:
        # device.ua/os/ip/language are filled from the request where the event has none
        event_id = eventfwd.enqueue(platform_id, request.get_json(silent=True))
        return {"id": event_id}, 202

    return app


if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
