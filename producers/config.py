"""Settings for a web app: the environment (and `./.env`), overridden by the framework's config.

Flask's `app.config` and Django's `settings.py` take the same names as the environment
(`EVENTFWD_REDIS_URL`, `EVENTFWD_SPOOL_DIR`, ...), with Python values (`True`, `512`, a `Path`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eventfwd.core.settings import PREFIX, Settings, read_dotenv


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


def settings_from(config: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from `environ` (default: `./.env` and `os.environ`), then `config`'s `EVENTFWD_*`.

    A `None` value in `config` leaves the environment's value in place. Bad or unknown names
    raise `ConfigError` naming the key, as for the environment.
    """
    if environ is None:
        source = {**read_dotenv(Path.cwd() / ".env"), **os.environ}
    else:
        source = dict(environ)
    for key, value in config.items():
        if key.startswith(PREFIX) and value is not None:
            source[key] = _as_text(value)
    return Settings.from_mapping(source)
