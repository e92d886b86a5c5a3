"""The delivery side: Celery worker and beat (`celery -A worker worker|beat`) and the CLI.

`app` is built on first use, so `import eventfwd.cli.main` works (and reports bad settings as one
line) without constructing Celery.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("app", "celery"):
        from worker.app import app

        return app
    raise AttributeError(name)
