"""`AsyncEventProducer`: `EventProducer` for asyncio (redis.asyncio), with the same semantics.

It runs the same `enqueue.lua` with the same ARGV (`eventfwd.core.ledger.enqueue_argv`), so an event
enqueued from either producer is the same ledger entry. Make one per event loop (in an ASGI
app: in the lifespan, see `producers.fastapi`) and `await aclose()` it at the end. Spool writes
run in a thread (they fsync); the spool drainer is a thread with its own synchronous client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import redis
import redis.asyncio as aredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from eventfwd.core.connection import connect, redact_url, redis_py_url, sentinel_config
from eventfwd.core.errors import ConfigError, EnqueueError
from eventfwd.core.ledger import Ledger, check_enqueue, enqueue_argv, script_source
from eventfwd.core.schema import ValidEvent
from eventfwd.core.settings import Settings
from producers.base import ProducerBase, resolve_settings
from producers.failover import (
    CONNECT_TIMEOUT_S,
    ENQUEUE_BUDGET_S,
    FAILOVER_BUDGET_S,
    SOCKET_TIMEOUT_S,
    RetryPlan,
    give_up_error,
    is_retryable,
    is_unavailable,
)
from producers.spool import Row

log = logging.getLogger(__name__)

# Connections per producer; requests beyond wait for one (within the enqueue budget).
MAX_CONNECTIONS = 32
# One try may not outlast a connect plus a read, whatever the pool or the network does.
ATTEMPT_LIMIT_S = CONNECT_TIMEOUT_S + SOCKET_TIMEOUT_S


def connect_async(url: str, *, pool_timeout_s: float, **options: Any) -> aredis.Redis:
    """An asyncio Redis client for `url` (the URL forms `connect()` takes)."""
    if url.startswith("sentinel://"):
        cfg = sentinel_config(url)
        # the asyncio Sentinel needs its own Retry type; no retries, the next sentinel is one
        sentinel_kwargs = cfg.sentinel_kwargs(
            AsyncRetry(NoBackoff(), 0),
            socket_timeout=options.get("socket_timeout"),
            socket_connect_timeout=options.get("socket_connect_timeout"),
        )
        sentinel = Sentinel(cfg.hosts, sentinel_kwargs=sentinel_kwargs)
        return sentinel.master_for(cfg.master_name, **cfg.master_kwargs(), **options)
    try:
        pool = aredis.BlockingConnectionPool.from_url(
            redis_py_url(url), max_connections=MAX_CONNECTIONS, timeout=pool_timeout_s, **options
        )
    except ValueError as exc:
        raise ConfigError(
            f"EVENTFWD_REDIS_URL {redact_url(url)!r} is not a Redis URL: {exc}"
        ) from None
    return aredis.Redis(connection_pool=pool)


class AsyncEventProducer(ProducerBase):
    """Validate events and hand them to the ledger from asyncio code; one per event loop."""

    def __init__(self, redis_url: str | None = None, *, settings: Settings | None = None) -> None:
        self.settings = resolve_settings(redis_url, settings)
        self._client = connect_async(
            self.settings.redis_url,
            pool_timeout_s=FAILOVER_BUDGET_S,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=SOCKET_TIMEOUT_S,
            health_check_interval=30,
        )
        self._script = self._client.register_script(script_source("enqueue"))
        self._drain_client: redis.Redis | None = None
        self._init_spool(self._drain_ledger)

    def _drain_ledger(self) -> Ledger:
        # Called in the drainer thread: a synchronous client of its own, outside any loop.
        if self._drain_client is None:
            self._drain_client = connect(
                self.settings.redis_url,
                socket_connect_timeout=CONNECT_TIMEOUT_S,
                socket_timeout=SOCKET_TIMEOUT_S * 4,
            )
        return Ledger(self._drain_client, self.settings)

    async def enqueue(
        self, platform_id: str, event: Mapping[str, Any], *, id_namespace: str | None = None
    ) -> str:
        """Validate and enqueue one event for `platform_id`; return its id.

        `id_namespace` (e.g. the authenticated caller) scopes the event's own id to that caller.
        """
        valid = [self.validate(event)]
        return (await self.enqueue_validated(platform_id, valid, id_namespace=id_namespace))[0]

    async def enqueue_many(
        self,
        platform_id: str,
        events: Iterable[Mapping[str, Any]],
        *,
        id_namespace: str | None = None,
    ) -> list[str]:
        """Validate every event, then enqueue them (one round trip per 500); return their ids."""
        valid = self.validate_many(events)
        return await self.enqueue_validated(platform_id, valid, id_namespace=id_namespace)

    async def enqueue_validated(
        self, platform_id: str, events: Sequence[ValidEvent], *, id_namespace: str | None = None
    ) -> list[str]:
        """Enqueue events that `validate()` already accepted (one round trip per 500)."""
        rows = self._rows(platform_id, events, id_namespace)
        if rows:
            started_s = time.perf_counter()
            try:
                await self._store(rows)
            except BaseException:
                self._observed(started_s, len(rows), ok=False)
                raise
            self._observed(started_s, len(rows), ok=True)
        return [row[0] for row in rows]

    async def _store(self, rows: Sequence[Row]) -> None:
        stored: list[str] = []
        for chunk in self._chunks(rows):
            try:
                await self._store_chunk(chunk)
            except EnqueueError as exc:
                raise EnqueueError(str(exc), stored_ids=stored) from exc.__cause__
            stored += [row[0] for row in chunk]

    async def _all_held(self, rows: Sequence[Row]) -> bool:
        """True when every row is in the ledger (or delivered): a lost answer, not a failure."""
        try:
            async with asyncio.timeout(ATTEMPT_LIMIT_S):
                async with self._client.pipeline(transaction=False) as pipe:
                    for entry, done in self._held_keys(rows):
                        pipe.exists(entry, done)
                    return all(await pipe.execute())
        except (redis.RedisError, TimeoutError):
            return False

    async def _store_chunk(self, rows: Sequence[Row]) -> None:
        if self._spooling_now():
            await asyncio.to_thread(self._spool_rows, rows)
            return
        plan = RetryPlan(ENQUEUE_BUDGET_S if self.spool is None else FAILOVER_BUDGET_S)
        args = enqueue_argv(self.settings, rows)
        while True:
            try:
                try:
                    async with asyncio.timeout(ATTEMPT_LIMIT_S):
                        result = await self._script(keys=[], args=args)
                except TimeoutError as exc:  # the asyncio limit, not a socket timeout
                    raise redis.TimeoutError(f"no answer within {ATTEMPT_LIMIT_S}s") from exc
                check_enqueue(result, rows)
                return
            except redis.RedisError as exc:
                pause = plan.pause_after(exc)
                if pause is None:
                    if is_retryable(exc) and await self._all_held(rows):
                        log.info("enqueue answer lost, events stored event_id=%s", rows[0][0])
                        return
                    if self.spool is not None and is_unavailable(exc):
                        await asyncio.to_thread(self._spool_rows, rows, exc)
                        return
                    url = redact_url(self.settings.redis_url)
                    raise give_up_error(exc, len(rows), url) from exc
                log.debug("enqueue retry after %s", type(exc).__name__)
                await asyncio.sleep(pause)

    async def aclose(self) -> None:
        """Stop the spool drainer and release the Redis connections."""
        await asyncio.to_thread(self._stop_drainer)
        await self._client.aclose()
        if self._drain_client is not None:
            self._drain_client.close()

    async def __aenter__(self) -> AsyncEventProducer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
