"""The app config: `INSTALLED_APPS = [..., "producers.django"]`."""

from __future__ import annotations

from django.apps import AppConfig


class EventfwdConfig(AppConfig):
    name = "producers.django"
    label = "eventfwd"
    verbose_name = "eventfwd (Moloco user events)"

    def ready(self) -> None:
        from producers.django import checks, producer

        checks.register_checks()
        producer.connect_signals()
