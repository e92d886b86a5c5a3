"""Real Celery worker and beat processes for integration tests (no eager mode)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from eventfwd.devkit import localprocess
from eventfwd.devkit.localprocess import ChildProcess

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


class Proc(ChildProcess):
    """A worker, beat or other child of a test, run from the repository root."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        super().__init__(name, args, env, log_path, cwd=ROOT)


def worker(env: dict[str, str], tmp: Path, *, name: str = "w1", concurrency: int = 2) -> Proc:
    args = [
        sys.executable, "-m", "celery", "-A", "worker", "worker",
        "--loglevel", "INFO", "--pool", "prefork", "--concurrency", str(concurrency),
        "--hostname", f"{name}@%h", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    return Proc(name, args, env, tmp / f"{name}.log")


def beat(env: dict[str, str], tmp: Path, *, name: str = "beat") -> Proc:
    args = [
        sys.executable, "-m", "celery", "-A", "worker", "beat", "--loglevel", "INFO",
        "--schedule", str(tmp / f"{name}-schedule"), "--pidfile", "",
    ]  # fmt: skip
    return Proc(name, args, env, tmp / f"{name}.log")


def wait_for(predicate, timeout_s: float, interval_s: float = 0.05, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll `predicate` until it returns something truthy; fail with `what` after `timeout_s`."""
    return localprocess.wait_for(
        predicate, timeout_s, what, step_s=interval_s, error=AssertionError
    )
