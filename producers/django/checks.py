"""System checks (`manage.py check`, and at every `runserver`/`migrate`): bad eventfwd settings.

    eventfwd.E001  an EVENTFWD_* setting (settings.py or environment) is malformed or unknown
    eventfwd.E002  EVENTFWD_SPOOL_DIR is not a directory this process can write

No check talks to Redis: checks run on every management command, also where Redis is not up.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.checks import CheckMessage, Error, register

from eventfwd.core.errors import ConfigError

TAG = "eventfwd"


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report malformed or unknown EVENTFWD_* settings and an unusable spool directory."""
    from producers.django.producer import configured_settings

    try:
        settings = configured_settings()
    except ConfigError as exc:
        return [
            Error(
                f"eventfwd: {exc}",
                hint="Fix the value in settings.py or the environment; see "
                "docs/reference/configuration.md.",
                id="eventfwd.E001",
            )
        ]
    if settings.spool_dir:
        spool = Path(settings.spool_dir)
        parent = next((p for p in (spool, *spool.parents) if p.exists()), None)
        usable = parent is not None and parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)
        if not usable:
            return [
                Error(
                    f"eventfwd: EVENTFWD_SPOOL_DIR={settings.spool_dir} is not a directory "
                    "this process can create or write",
                    hint="Create it (owned by the web server's user) or point it elsewhere.",
                    id="eventfwd.E002",
                )
            ]
    return []


def register_checks() -> None:
    register(check_settings, TAG)
