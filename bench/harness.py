"""The processes a benchmark runs against: private Redis, the sink, Celery workers and beat.

Everything started here is registered in `STARTED` and stopped by its own PID (its process
group, for the Celery ones we started in a new session) when the scenario ends, at exit and on
Ctrl-C. Workers get an explicit `EVENTFWD_` environment, like `tests/support/stack.py`, and
run in the bench's temporary directory so that a developer's `.env` cannot leak into them.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import redis
import requests

from eventfwd.core.settings import Settings
from eventfwd.devkit import localprocess
from eventfwd.devkit.localprocess import ChildProcess
from eventfwd.devkit.localredis import LocalRedis

ROOT = Path(__file__).resolve().parents[1]
PLATFORM = "bench-platform"
API_KEY = "bench-key"
# High enough that the platform rate limit never throttles a throughput run.
UNLIMITED_RATE_PER_S = 100_000
STOP_TIMEOUT_S = 15.0
_T = TypeVar("_T")


class BenchError(RuntimeError):
    """A scenario could not run or its result failed a check (e.g. lost events)."""


@dataclass(frozen=True)
class WorkerConfig:
    """One way to run our worker: the levers the lead may want to compare."""

    pool: str = "prefork"
    concurrency: int = 2
    # the product default (EVENTFWD_BATCH_SIZE)
    batch_size: int = field(default_factory=lambda: Settings().batch_size)
    env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, spec: str) -> WorkerConfig:
        """`pool=threads,concurrency=32,batch=10,EVENTFWD_X=y` (every part optional)."""
        values: dict[str, Any] = {}
        env: list[tuple[str, str]] = []
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"worker spec part {part!r} is not NAME=VALUE")
            if name == "pool":
                values["pool"] = value
            elif name == "concurrency":
                values["concurrency"] = int(value)
            elif name in ("batch", "batch_size"):
                values["batch_size"] = int(value)
            elif name.startswith("EVENTFWD_"):
                env.append((name, value))
            else:
                raise ValueError(f"unknown worker spec part {name!r}")
        return cls(**values, env=tuple(env))

    @property
    def label(self) -> str:
        extra = "".join(f",{k}={v}" for k, v in self.env)
        return f"{self.pool} x{self.concurrency}, batch {self.batch_size}{extra}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "pool": self.pool,
            "concurrency": self.concurrency,
            "batch_size": self.batch_size,
            "env": dict(self.env),
        }


# -- process bookkeeping ---------------------------------------------------------------------


@dataclass
class Started:
    """Every process a scenario started, stopped in reverse order."""

    procs: list[Proc] = field(default_factory=list)
    redis_servers: list[LocalRedis] = field(default_factory=list)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                proc.stop()
        self.procs.clear()
        for server in reversed(self.redis_servers):
            with contextlib.suppress(Exception):
                server.stop()
        self.redis_servers.clear()


STARTED = Started()


def install_signal_handlers() -> None:
    """Turn SIGTERM into KeyboardInterrupt so `finally` blocks stop what we started."""

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


class Proc(ChildProcess):
    """A child of the bench; remembered until stopped, so an interrupted run stops it too."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str], cwd: Path, log_path: Path
    ) -> None:
        super().__init__(name, args, env, log_path, cwd=cwd)

    def start(self) -> Proc:
        super().start()
        STARTED.procs.append(self)
        return self

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        super().stop(timeout_s)
        if self in STARTED.procs:
            STARTED.procs.remove(self)

    def log_tail(self, chars: int = 2000) -> str:
        return self.log()[-chars:]


def base_env(**overrides: str) -> dict[str, str]:
    """The caller's environment without any `EVENTFWD_` variable, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTFWD_")}
    env["SENTRY_DSN"] = ""
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(overrides)
    return env


def wait_for(predicate: Callable[[], _T], timeout_s: float, what: str, step_s: float = 0.05) -> _T:
    """Poll `predicate` until it is truthy; `BenchError` naming `what` after `timeout_s`."""
    return localprocess.wait_for(predicate, timeout_s, what, step_s=step_s, error=BenchError)


# -- the pieces ------------------------------------------------------------------------------


def start_redis(work: Path, name: str = "redis") -> LocalRedis:
    """A private redis-server (AOF everysec, noeviction, as deployed) on a free port."""
    server = LocalRedis(work / name)
    STARTED.redis_servers.append(server)
    server.start()
    return server


def redis_db_url(server: LocalRedis, db: int) -> str:
    return f"redis://127.0.0.1:{server.port}/{db}"


class Sink:
    """`python -m eventfwd.devkit.sink` in its own process (so it does not share our GIL)."""

    def __init__(self, work: Path, *, latency_ms: int = 0, name: str = "sink") -> None:
        args = [sys.executable, "-m", "eventfwd.devkit.sink", "--host", "127.0.0.1", "--port", "0"]
        args += ["--api-key", API_KEY, "--quiet", "--latency-ms", str(latency_ms)]
        self.latency_ms = latency_ms
        self.proc = Proc(name, args, base_env(), work, work / f"{name}.log")
        self.url = ""
        self._http = requests.Session()
        self._http.trust_env = False

    def start(self) -> Sink:
        self.proc.start()

        def ready() -> str | None:
            if not self.proc.alive():
                raise BenchError(f"the sink exited: {self.proc.log_tail()}")
            match = re.search(r"listening on (http://\S+)", self.proc.log_tail())
            return match.group(1) if match else None

        url = wait_for(ready, 20, "the sink to listen")
        assert url is not None
        self.url = url
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._get("stats")
        return result

    def reset(self) -> None:
        self._http.post(f"{self.url}/_sink/reset", timeout=10).raise_for_status()

    def add_fault(self, rule: dict[str, Any]) -> None:
        """Add a fault rule (`eventfwd/devkit/sink/faults.py`); `reset()` clears them."""
        self._http.post(f"{self.url}/_sink/faults", json=rule, timeout=10).raise_for_status()

    def events(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` accepted events (the sink keeps 10,000), newest last."""
        result: list[dict[str, Any]] = self._get(f"events?limit={limit}")["events"]
        return result

    def _get(self, path: str) -> Any:
        response = self._http.get(f"{self.url}/_sink/{path}", timeout=10)
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        self._http.close()
        self.proc.stop()


@contextlib.contextmanager
def running_redis(work: Path, name: str) -> Iterator[LocalRedis]:
    """`start_redis`, stopped however the block ends."""
    server = start_redis(work, name)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def running_sink(work: Path, name: str, latency_ms: int = 0) -> Iterator[Sink]:
    """A started `Sink`, stopped however the block ends."""
    sink = Sink(work, latency_ms=latency_ms, name=name).start()
    try:
        yield sink
    finally:
        sink.stop()


@contextlib.contextmanager
def redis_and_sink(work: Path, name: str, latency_ms: int = 0) -> Iterator[tuple[LocalRedis, Sink]]:
    """A scenario's private redis-server and sink (`redis-NAME`, `sink-NAME` in the work dir)."""
    with (
        running_redis(work, f"redis-{name}") as server,
        running_sink(work, f"sink-{name}", latency_ms) as sink,
    ):
        yield server, sink


def at_each_sink_latency(
    work: Path,
    name: str,
    measure: Callable[[LocalRedis, Sink], dict[str, Any]],
    latencies: tuple[int, ...] = (0, 50),
) -> dict[str, Any]:
    """`measure` against one Redis and a sink of each latency: {"0ms": ..., "50ms": ...}."""
    out: dict[str, Any] = {}
    with running_redis(work, f"redis-{name}") as server:
        for latency_ms in latencies:
            with running_sink(work, f"sink-{name}-{latency_ms}ms", latency_ms) as sink:
                out[f"{latency_ms}ms"] = measure(server, sink)
    return out


def eventfwd_env(
    redis_url: str, sink_url: str, config: WorkerConfig, **extra: str
) -> dict[str, str]:
    """The environment of our worker and beat: every setting the scenario depends on."""
    env = {
        "EVENTFWD_REDIS_URL": redis_url,
        "EVENTFWD_MOLOCO_BASE_URL": sink_url,
        "EVENTFWD_MOLOCO_API_KEY": API_KEY,
        "EVENTFWD_RATE_LIMIT_PER_SECOND": str(UNLIMITED_RATE_PER_S),
        "EVENTFWD_BATCH_SIZE": str(config.batch_size),
    }
    env.update(dict(config.env))
    env.update(extra)
    return base_env(**env)


def celery_worker(
    work: Path, app: str, env: dict[str, str], config: WorkerConfig, name: str
) -> Proc:
    """A `celery -A <app> worker` subprocess with the pool and concurrency of `config`."""
    args = [sys.executable, "-m", "celery", "-A", app, "worker", "--loglevel", "WARNING"]
    args += ["--pool", config.pool, "--concurrency", str(config.concurrency)]
    args += ["--hostname", f"{name}@%h", "--without-gossip", "--without-mingle"]
    return Proc(name, args, env, work, work / f"{name}.log")


def celery_beat(work: Path, env: dict[str, str], name: str = "beat") -> Proc:
    args = [sys.executable, "-m", "celery", "-A", "worker", "beat", "--loglevel", "WARNING"]
    args += ["--schedule", str(work / f"{name}-schedule"), "--pidfile", ""]
    return Proc(name, args, env, work, work / f"{name}.log")


def flush(server: LocalRedis) -> None:
    client = redis.Redis(port=server.port)
    try:
        client.flushall()
        client.config_resetstat()
    finally:
        client.close()


# -- /proc readings ---------------------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces; everything after its closing parenthesis is fixed.
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(pid: int) -> list[int]:
    """`pid` and every descendant of it that is alive now."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, []))
    return tree


def rss_kb(pid: int) -> int:
    """VmRSS of `pid` and all its descendants, in KiB."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def cpu_s(pid: int, *, tree: bool = True) -> float:
    """User + system CPU seconds used so far by `pid` (and its live descendants)."""
    total = 0
    for member in process_tree(pid) if tree else [pid]:
        fields = _stat_fields(member)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
    return total / _CLK_TCK
