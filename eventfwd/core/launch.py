"""The command line that runs our Celery worker or beat, for `eventfwd worker|beat` and `dev`."""

from __future__ import annotations

import sys


def celery_argv(what: str, *args: str) -> list[str]:
    """The command line of `celery -A worker WHAT ARGS` with our `worker`, whatever the current
    directory holds: `-P` keeps it off `sys.path`, and `python -m worker` keeps Celery from
    putting it back first (see worker/__main__.py)."""
    return [sys.executable, "-P", "-m", "worker", what, *args]
