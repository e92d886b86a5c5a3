"""`python -P -m worker worker|beat ARGS`: `celery -A worker ...`, whatever the current directory
holds.

Celery puts the current directory first on `sys.path` while it imports the `-A` module, so a
`worker.py` (or a `worker/`) there would be loaded instead of this package. `eventfwd worker|beat`
execs this module with `-P` (no current directory on `sys.path` at start). It drops the directory
again in case it came in another way, imports the app while the path holds only installed code,
then hands over to Celery's own main with `-A worker`: Celery finds `worker` imported and uses it.
"""

from __future__ import annotations

import os
import sys

from eventfwd.core.errors import ConfigError


def without_current_directory(path: list[str]) -> list[str]:
    """`path` without the entries that mean the current directory."""
    try:
        cwd = os.getcwd()
    except FileNotFoundError:  # removed under us: nothing to import from there anyway
        cwd = None
    return [entry for entry in path if entry not in ("", ".", cwd)]


def main(argv: list[str] | None = None) -> None:
    """Run Celery's command line on this package's app with `argv` (default: ours)."""
    sys.path[:] = without_current_directory(sys.path)
    sys.argv = ["celery", "-A", "worker", *(sys.argv[1:] if argv is None else argv)]
    from celery import maybe_patch_concurrency

    # as `python -m celery` does: an eventlet or gevent pool patches before anything else loads
    maybe_patch_concurrency(sys.argv)
    try:
        import worker.app  # noqa: F401  (imported here, not from the current directory)
    except ConfigError as exc:
        # one line and EX_CONFIG (78), as the CLI reports a bad setting
        print(f"eventfwd: configuration: {exc}", file=sys.stderr)
        sys.exit(os.EX_CONFIG)
    from celery.bin.celery import main as celery_main

    sys.exit(celery_main())


if __name__ == "__main__":
    main()
