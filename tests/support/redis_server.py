"""The suite's own redis-server: AOF with `appendfsync always`, so a SIGKILL loses nothing."""

from __future__ import annotations

from pathlib import Path

from worker.localredis import LocalRedis, free_port

__all__ = ["RedisServer", "free_port"]


class RedisServer(LocalRedis):
    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        super().__init__(data_dir, port=port, fsync="always")
