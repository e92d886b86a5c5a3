"""A private `redis-server` process: for `eventfwd dev`, and for tests that kill and restart it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

INSTALL_HINT = (
    "redis-server is not installed; on Debian/Ubuntu: sudo apt-get install -y redis-server "
    "(on macOS: brew install redis)"
)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalRedis:
    """`redis-server` on loopback with AOF on and no eviction, data kept in `data_dir`."""

    def __init__(self, data_dir: Path, *, port: int | None = None, fsync: str = "everysec") -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError(INSTALL_HINT)
        self.binary = binary
        self.data_dir = data_dir
        self.port = port or free_port()
        self.fsync = fsync
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s: float = 10) -> LocalRedis:
        """Start (replaying the AOF left by an earlier run) and wait until it answers PING."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", self.fsync,
            "--save", "",
            "--maxmemory-policy", "noeviction",
            # compact event hashes although bodies pass 64 bytes (a third less memory)
            "--hash-max-ziplist-value", "8192",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    if client.ping():
                        return self
                except (redis.ConnectionError, redis.BusyLoadingError):
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start; see {self.data_dir}/redis.log")
                time.sleep(0.02)
        finally:
            client.close()

    def _end(self, sig: int) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        """Shut down cleanly (SIGTERM: Redis flushes the AOF)."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Die at once, as in a crash (SIGKILL); the AOF is all that is left."""
        self._end(signal.SIGKILL)

    def restart(self, *, kill: bool = True) -> None:
        (self.kill if kill else self.stop)()
        self.start()
