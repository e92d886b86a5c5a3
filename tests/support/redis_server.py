"""The suite's own redis-server: AOF with `appendfsync always`, so a SIGKILL loses nothing."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from eventfwd.devkit.localredis import LocalRedis, free_port

__all__ = ["RedisServer", "free_port"]


class RedisServer(LocalRedis):
    """Every instance is remembered, so the suite can stop what a failed test left running."""

    started: ClassVar[list[RedisServer]] = []

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        super().__init__(data_dir, port=port, fsync="always")

    def start(self, timeout_s: float = 10) -> RedisServer:
        super().start(timeout_s)
        RedisServer.started.append(self)
        return self

    @classmethod
    def stop_all(cls) -> None:
        """Stop every server a test started and did not stop (by its own pid)."""
        for server in cls.started:
            if server.running():
                server.stop()
        cls.started.clear()
