"""Real Celery worker and beat processes for integration tests (no eager mode)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from eventfwd.core.settings import Settings
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


class Stack:
    """Worker and beat processes started for one test; all stopped at its end."""

    def __init__(self, redis_url: str, sink_url: str, tmp: Path) -> None:
        self.redis_url = redis_url
        self.sink_url = sink_url
        self.tmp = tmp
        self.procs: list[Proc] = []

    def env(self, **overrides: str) -> dict[str, str]:
        return base_env(self.redis_url, self.sink_url, **overrides)

    def worker(self, name: str = "w1", concurrency: int = 2, **overrides: str) -> Proc:
        proc = worker(self.env(**overrides), self.tmp, name=name, concurrency=concurrency)
        self.procs.append(proc.start())
        return proc

    def beat(self, name: str = "beat", **overrides: str) -> Proc:
        proc = beat(self.env(**overrides), self.tmp, name=name)
        self.procs.append(proc.start())
        return proc

    def settings(self, **overrides: str) -> Settings:
        return Settings.from_mapping(self.env(**overrides))

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def logs(self) -> str:
        return "\n".join(f"===== {p.name}\n{p.log()[-4000:]}" for p in self.procs)


@contextmanager
def stacks(
    sink_url: str, tmp: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], Stack]]:
    """Make stacks on any Redis URL; stop them all at the end, printing their logs if the test
    failed (`rep_call` is set by the report hook in tests/conftest.py)."""
    made: list[Stack] = []

    def make(redis_url: str) -> Stack:
        made.append(Stack(redis_url, sink_url, tmp))
        return made[-1]

    try:
        yield make
    finally:
        failed = getattr(request.node, "rep_call", None)
        for s in made:
            s.stop()
            if failed is not None and failed.failed:
                print(s.logs())
