"""redis-server processes with any options (TLS, a unix socket) and a Redis Sentinel beside them.

`LocalRedis` covers the plain TCP server; these cover the other transports. Every process is
started by us and only ever signalled by its own PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from eventfwd.devkit.localredis import free_port
from tests.support.tls import Certs


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (scripts/bootstrap installs it)")
    return binary


class RedisProcess:
    """`redis-server` with `args`; started when `client()` answers PING."""

    def __init__(
        self, name: str, args: list[str], data_dir: Path, client: Callable[[], redis.Redis]
    ) -> None:
        self.name = name
        self.args = args
        self.data_dir = data_dir
        self.client = client
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    def start(self, timeout_s: float = 10) -> RedisProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [redis_binary(), *self.args, "--logfile", str(self.log_path)]
        self.proc = subprocess.Popen(
            args, cwd=self.data_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout_s
        while True:
            client = self.client()
            try:
                if client.ping():
                    return self
            except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                pass
            finally:
                client.close()
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = self.log_path.read_text() if self.log_path.exists() else ""
                self.stop()
                raise RuntimeError(f"{self.name} did not start:\n{log[-2000:]}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


def durable_args(data_dir: Path) -> list[str]:
    """What `LocalRedis` sets too: AOF on and no eviction (so the worker's check stays quiet)."""
    return [
        "--bind", "127.0.0.1", "--dir", str(data_dir), "--appendonly", "yes",
        "--appendfsync", "everysec", "--save", "", "--maxmemory-policy", "noeviction",
    ]  # fmt: skip


def start_sentinel(
    data_dir: Path,
    master_port: int,
    master_name: str,
    *,
    password: str | None = None,
    tls: Certs | None = None,
) -> tuple[RedisProcess, int]:
    """A sentinel on a free port monitoring the master on 127.0.0.1:`master_port`.

    With `password`, the sentinel itself asks clients for it (`requirepass`). With `tls`, it
    speaks only TLS, to its clients and to the master (which must speak TLS too).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    if tls is None:
        listen = [f"port {port}"]
    else:
        listen = [
            "port 0", f"tls-port {port}", f"tls-cert-file {tls.cert}",
            f"tls-key-file {tls.key}", f"tls-ca-cert-file {tls.ca}", "tls-auth-clients no",
            "tls-replication yes",
        ]  # fmt: skip
    lines = [
        *listen,
        "bind 127.0.0.1",
        f"dir {data_dir}",
        f"sentinel monitor {master_name} 127.0.0.1 {master_port} 1",
        f"sentinel down-after-milliseconds {master_name} 60000",
    ]
    if password:
        lines.append(f"requirepass {password}")
    conf = data_dir / "sentinel.conf"  # the sentinel rewrites it: it must be writable
    conf.write_text("\n".join(lines) + "\n")
    proc = RedisProcess(
        "sentinel",
        [str(conf), "--sentinel"],
        data_dir,
        lambda: redis.Redis(
            port=port,
            password=password,
            socket_connect_timeout=0.2,
            ssl=tls is not None,
            ssl_ca_certs=str(tls.ca) if tls else None,
        ),
    )
    return proc.start(), port
