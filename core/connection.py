"""Redis clients for the ledger from one URL: `redis://`, `rediss://` (TLS), `unix://` or
`sentinel://host:26379[;sentinel://host2:26379]/db` (the same form Celery's broker takes; the
master's name comes from `?master_name=` or defaults to `mymaster`).

Redis Cluster is not supported: Celery's Redis broker does not support it, and the ledger keeps
an event's keys and the queue on one server so that every transition is one atomic script.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis
from redis.sentinel import Sentinel

from core.errors import ConfigError

DEFAULT_SENTINEL_MASTER = "mymaster"


def redact_url(url: str) -> str:
    """Return `url` with any password replaced by `***`, fit for logs and error messages."""
    return re.sub(r"(://[^:@/;]*):[^@/;]*@", r"\1:***@", url)


def connect(url: str, **options: Any) -> redis.Redis:
    """Return a Redis client for `url`; `options` go to the connection (timeouts, retries)."""
    if url.startswith("sentinel://"):
        return _sentinel_master(url, options)
    try:
        return redis.Redis.from_url(url, **options)
    except ValueError as exc:
        raise ConfigError(
            f"EVENTFWD_REDIS_URL {redact_url(url)!r} is not a Redis URL: {exc}"
        ) from None


def sentinel_parts(url: str) -> tuple[list[tuple[str, int]], int, str, str | None]:
    """Split a `sentinel://` URL into (sentinel hosts, db, master name, password)."""
    hosts: list[tuple[str, int]] = []
    db, master, password = 0, DEFAULT_SENTINEL_MASTER, None
    for part in url.split(";"):
        parts = urlsplit(part.strip())
        if parts.scheme != "sentinel" or not parts.hostname:
            raise ConfigError(
                f"EVENTFWD_REDIS_URL part {redact_url(part)!r} is not sentinel://host:port"
            )
        hosts.append((parts.hostname, parts.port or 26379))
        if parts.path.strip("/").isdigit():
            db = int(parts.path.strip("/"))
        password = parts.password or password
        master = parse_qs(parts.query).get("master_name", [master])[0]
    return hosts, db, master, password


def _sentinel_master(url: str, options: dict[str, Any]) -> redis.Redis:
    hosts, db, master, password = sentinel_parts(url)
    sentinel = Sentinel(hosts, socket_timeout=options.get("socket_timeout"))
    return sentinel.master_for(master, db=db, password=password, **options)
