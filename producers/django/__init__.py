"""Django: a reusable app configured from `settings.py`, with a system check for bad settings.

    INSTALLED_APPS = [..., "producers.django"]
    MIDDLEWARE = [..., "producers.django.middleware.EventErrorsMiddleware"]  # JSON 422/503
    EVENTFWD_REDIS_URL = "redis://redis.internal:6379/0"   # any EVENTFWD_* name; else the env
    EVENTFWD_SPOOL_DIR = BASE_DIR / "spool"

    from producers.django import enqueue

    def track(request, platform_id):
        event_id = enqueue(request, platform_id, json.loads(request.body))
        return JsonResponse({"id": event_id}, status=202)

`get_producer()` is the process's `EventProducer`, made on first use from `settings.py` over
the environment (and made again when a test overrides an `EVENTFWD_*` setting).
`manage.py check` reports bad settings as `eventfwd.E001` / `eventfwd.E002`. Needs the
`django` extra (`pip install 'eventfwd[django]'`).
"""

from __future__ import annotations

from producers.django.producer import (
    configured_settings,
    device_from_request,
    enqueue,
    enqueue_many,
    get_producer,
    reset_producer,
)

__all__ = [
    "configured_settings",
    "device_from_request",
    "enqueue",
    "enqueue_many",
    "get_producer",
    "reset_producer",
]
