"""A child process we start ourselves and only ever signal by its own PID or process group.

Used by the test suite and the benchmarks to run Celery workers, beat and the sink.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

_T = TypeVar("_T")


def wait_for(
    predicate: Callable[[], _T],
    timeout_s: float,
    what: str,
    *,
    step_s: float = 0.05,
    error: type[Exception] = TimeoutError,
) -> _T:
    """Poll `predicate` until it is truthy and return that; raise `error` naming `what` after
    `timeout_s` (tests raise AssertionError, the bench its own error)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(step_s)


class ChildProcess:
    """A command in its own session (so its pool children share its process group)."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str], log_path: Path, *, cwd: Path
    ) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> ChildProcess:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.args,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout_s: float = 15) -> None:
        """SIGTERM (Celery's warm shutdown), then SIGKILL whatever is left of the group."""
        if self.popen is None:
            return
        group = self.popen.pid  # start_new_session: the group id is the child's own pid
        if self.popen.poll() is None:
            os.kill(group, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        # pool children share the group; none may outlive their parent
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
        self.popen = None

    def kill(self) -> None:
        """SIGKILL the whole group at once, as in a crash."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)
        self.popen = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
