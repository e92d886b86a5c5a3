"""Answer eventfwd's errors as JSON: `InvalidEvent` → 422 `{"errors": [...]}`, `EnqueueError` → 503.

MIDDLEWARE = [..., "producers.django.middleware.EventErrorsMiddleware"]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from eventfwd.core.errors import EnqueueError, InvalidEvent


def invalid_event_response(exc: InvalidEvent) -> JsonResponse:
    """422 with every broken rule: `{"errors": [{"path", "rule", "message"}, ...]}`."""
    body: dict[str, Any] = {"errors": exc.as_dicts()}
    if exc.index is not None:
        body["index"] = exc.index
    return JsonResponse(body, status=422)


def enqueue_error_response(exc: EnqueueError) -> JsonResponse:
    """503: the event was not stored (Redis down and no spool, or the spool full)."""
    return JsonResponse({"error": "events are not being accepted right now, try again"}, status=503)


class EventErrorsMiddleware:
    """Turn `InvalidEvent` and `EnqueueError` raised by a view into JSON responses."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if isinstance(exc, InvalidEvent):
            return invalid_event_response(exc)
        if isinstance(exc, EnqueueError):
            return enqueue_error_response(exc)
        return None
