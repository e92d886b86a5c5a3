"""`POST /events/<platform_id>` → 202 `{"id": ...}`; the middleware answers a refused event."""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from producers.django import enqueue


@require_GET
def index(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"post_events_to": "/events/<platform_id>"})


@csrf_exempt  # an API for scripts and other servers; keep CSRF on for browser forms
@require_POST
def track(request: HttpRequest, platform_id: str) -> JsonResponse:
    try:
        event = json.loads(request.body)
    except ValueError:
        event = None  # refused by validation as "not a JSON object", with the others
    # device.ua/os/ip/language are filled from the request where the event has none
    return JsonResponse({"id": enqueue(request, platform_id, event)}, status=202)
