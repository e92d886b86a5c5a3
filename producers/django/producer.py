"""The process's producer, built from Django settings over the environment."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings as django_settings
from django.http import HttpRequest

from eventfwd.core.settings import PREFIX, Settings
from producers.config import settings_from
from producers.producer import EventProducer
from producers.request_device import device_from, with_device

_lock = threading.Lock()
_producer: EventProducer | None = None


def configured_settings() -> Settings:
    """eventfwd settings: every `EVENTFWD_*` of `settings.py` over the environment."""
    names = [name for name in dir(django_settings) if name.startswith(PREFIX)]
    return settings_from({name: getattr(django_settings, name) for name in names})


def get_producer() -> EventProducer:
    """This process's producer (thread-safe, fork-safe; made on first use)."""
    global _producer
    producer = _producer
    if producer is None:
        with _lock:
            if _producer is None:
                _producer = EventProducer(settings=configured_settings())
            producer = _producer
    return producer


def reset_producer() -> None:
    """Close the producer; the next `get_producer()` reads the settings again."""
    global _producer
    with _lock:
        producer, _producer = _producer, None
    if producer is not None:
        producer.close()


def device_from_request(request: HttpRequest) -> dict[str, str]:
    """Moloco `device` fields (ua, os, ip, language) of a request (`REMOTE_ADDR` is the ip)."""
    meta = request.META
    return device_from(
        meta.get("HTTP_USER_AGENT"), meta.get("REMOTE_ADDR"), meta.get("HTTP_ACCEPT_LANGUAGE")
    )


def _prepare(request: HttpRequest | None, event: Mapping[str, Any]) -> Mapping[str, Any]:
    if request is None or not isinstance(event, Mapping):
        return event
    return with_device(event, device_from_request(request))


def enqueue(
    request: HttpRequest | None,
    platform_id: str,
    event: Mapping[str, Any],
    *,
    id_namespace: str | None = None,
) -> str:
    """Enqueue one event, its missing device fields filled from `request` (None: not)."""
    prepared = _prepare(request, event)
    return get_producer().enqueue(platform_id, prepared, id_namespace=id_namespace)


def enqueue_many(
    request: HttpRequest | None,
    platform_id: str,
    events: Iterable[Mapping[str, Any]],
    *,
    id_namespace: str | None = None,
) -> list[str]:
    """Enqueue events (one round trip per 500), each with `request`'s device fields."""
    prepared = [_prepare(request, e) for e in events]
    return get_producer().enqueue_many(platform_id, prepared, id_namespace=id_namespace)


def _on_setting_changed(*, setting: str, **_: Any) -> None:
    if setting.startswith(PREFIX):
        reset_producer()


def connect_signals() -> None:
    from django.core.signals import setting_changed

    setting_changed.connect(_on_setting_changed, dispatch_uid="eventfwd.setting_changed")
