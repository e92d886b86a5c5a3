"""The operator's command line, `eventfwd` (commands registered in `eventfwd.cli.main`).

`main` here is the console script: it imports the command line only when run, so that a web
app's light install (`pip install eventfwd`, no click, no Celery) gets a one-line hint instead of
a traceback.
"""

from __future__ import annotations

import sys

# What `pip install 'eventfwd[worker]'` adds and the command line imports (top-level names).
WORKER_EXTRA_MODULES = frozenset(
    {"billiard", "celery", "certifi", "click", "kombu"}
    | {"prometheus_client", "sentry_sdk", "urllib3"}
)


def main() -> None:
    """Run `eventfwd`, or say how to install it where only the producer side is."""
    try:
        from eventfwd.cli.main import main as run
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in WORKER_EXTRA_MODULES:
            raise
        print(
            f"eventfwd: the command line comes with the worker side ({exc.name} is missing): "
            "pip install 'eventfwd[worker]'",
            file=sys.stderr,
        )
        sys.exit(1)
    run()
