"""Real Celery worker and beat processes for integration tests (no eager mode)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def base_env(redis_url: str, sink_url: str, **overrides: str) -> dict[str, str]:
    """The environment of a worker: only our settings, test-sized timings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTFWD_")}
    env["SENTRY_DSN"] = ""  # never report to a developer's real Sentry from tests
    env.update(
        {
            "EVENTFWD_REDIS_URL": redis_url,
            "EVENTFWD_MOLOCO_BASE_URL": sink_url,
            "EVENTFWD_MOLOCO_API_KEY": "test-key",
            "EVENTFWD_RETRY_BASE_SECONDS": "0.2",
            "EVENTFWD_RETRY_MAX_SECONDS": "2",
            "EVENTFWD_PUMP_INTERVAL_SECONDS": "0.2",
            "EVENTFWD_LEASE_SECONDS": "5",
            "EVENTFWD_HTTP_TIMEOUT_SECONDS": "2",
            "EVENTFWD_RATE_LIMIT_PER_SECOND": "1000",
            "EVENTFWD_CIRCUIT_PROBE_SECONDS": "2",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(overrides)
    return env


class Proc:
    """One child process we started; we only ever signal it by its own PID."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout_s: float = 15) -> None:
        """SIGTERM (Celery's warm shutdown), then SIGKILL to the process group if it hangs."""
        if self.proc is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL the whole group we started (the worker and its pool children)."""
        if self.proc is None:
            return
        if self.alive():
            os.killpg(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def worker(env: dict[str, str], tmp: Path, *, name: str = "w1", concurrency: int = 2) -> Proc:
    args = [
        sys.executable, "-m", "celery", "-A", "worker", "worker",
        "--loglevel", "INFO", "--pool", "prefork", "--concurrency", str(concurrency),
        "--hostname", f"{name}@%h", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    return Proc(name, args, env, tmp / f"{name}.log")


def beat(env: dict[str, str], tmp: Path) -> Proc:
    args = [
        sys.executable, "-m", "celery", "-A", "worker", "beat", "--loglevel", "INFO",
        "--schedule", str(tmp / "beat-schedule"), "--pidfile", "",
    ]  # fmt: skip
    return Proc("beat", args, env, tmp / "beat.log")


def wait_for(predicate, timeout_s: float, interval_s: float = 0.05, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll `predicate` until it returns something truthy; fail with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)
