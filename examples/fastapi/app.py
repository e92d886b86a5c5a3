"""FastAPI example: `POST /events/{platform_id}` → 202 `{"id": ...}`, or 422 `{"errors": [...]}`.

Run it with the whole stack behind it (Redis, a worker, the fake Moloco): `examples/run fastapi`.
Settings come from the environment (`EVENTFWD_*`), or `create_app(settings)`.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI

from eventfwd.core.settings import Settings
from producers.fastapi import (
    Producer,
    RequestDevice,
    install_error_handlers,
    lifespan_with,
    with_device,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    # The lifespan makes one AsyncEventProducer per worker process and closes it at shutdown.
    app = FastAPI(lifespan=lifespan_with(settings))
    # InvalidEvent → 422 {"errors": [{"path", "rule", "message"}, ...]}, EnqueueError → 503
    install_error_handlers(app)

    @app.get("/")
    async def index() -> dict[str, Any]:
        return {"post_events_to": "/events/{platform_id}"}

    @app.post("/events/{platform_id}", status_code=202)
    async def track(
        platform_id: str, event: dict[str, Any], producer: Producer, device: RequestDevice
    ) -> dict[str, str]:
        # device.ua/os/ip/language are filled from the request where the event has none
        return {"id": await producer.enqueue(platform_id, with_device(event, device))}

    return app


app = create_app()

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
