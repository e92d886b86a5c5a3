"""`EventProducer`: validate, then write the ledger entry and make it ready in one atomic step.

With `EVENTFWD_SPOOL_DIR` set, events that Redis cannot take go to the local spool instead
(`producers.spool`) and a background thread moves them into the ledger when Redis is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import redis

from eventfwd.core.connection import connect, redact_url
from eventfwd.core.errors import EnqueueError
from eventfwd.core.ledger import Ledger
from eventfwd.core.schema import ValidEvent
from eventfwd.core.settings import Settings
from eventfwd.core.vocabulary import Lane
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


class EventProducer(ProducerBase):
    """Validate events and hand them to the ledger; safe to share between threads."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        settings: Settings | None = None,
        backfill: bool = False,
    ) -> None:
        """`backfill=True`: this producer's events are claimed behind every live event of their
        platform (the backlog lane), so a script loading old events never delays a web app's."""
        self.settings = resolve_settings(redis_url, settings)
        self._lane = Lane.BACKLOG if backfill else Lane.LIVE
        self._client = connect(
            self.settings.redis_url,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=SOCKET_TIMEOUT_S,
            health_check_interval=30,
        )
        self._ledger = Ledger(self._client, self.settings)
        self._init_spool(lambda: self._ledger)

    def enqueue(
        self, platform_id: str, event: Mapping[str, Any], *, id_namespace: str | None = None
    ) -> str:
        """Validate and enqueue one event for `platform_id`; return its id.

        `id_namespace` (e.g. the authenticated caller) scopes the event's own id to that caller:
        the id stored and sent is derived from both, so one caller cannot pre-empt another's.
        """
        valid = [self.validate(event)]
        return self.enqueue_validated(platform_id, valid, id_namespace=id_namespace)[0]

    def enqueue_many(
        self,
        platform_id: str,
        events: Iterable[Mapping[str, Any]],
        *,
        id_namespace: str | None = None,
    ) -> list[str]:
        """Validate every event, then enqueue them (one round trip per 500); return their ids.

        Any invalid event raises `InvalidEvent` (its `index` says which) before anything is
        written. Enqueueing an id that is already waiting or was delivered recently is a no-op.
        """
        valid = self.validate_many(events)
        return self.enqueue_validated(platform_id, valid, id_namespace=id_namespace)

    def enqueue_validated(
        self, platform_id: str, events: Sequence[ValidEvent], *, id_namespace: str | None = None
    ) -> list[str]:
        """Enqueue events that `validate()` already accepted (one round trip per 500)."""
        rows = self._rows(platform_id, events, id_namespace)
        if rows:
            started_s = time.perf_counter()
            try:
                self._store(rows)
            except BaseException:
                self._observed(started_s, len(rows), ok=False)
                raise
            self._observed(started_s, len(rows), ok=True)
        return [row[0] for row in rows]

    def _store(self, rows: Sequence[Row]) -> None:
        stored: list[str] = []
        for chunk in self._chunks(rows):
            try:
                self._store_chunk(chunk)
            except EnqueueError as exc:
                raise EnqueueError(str(exc), stored_ids=stored) from exc.__cause__
            stored += [row[0] for row in chunk]

    def _all_held(self, rows: Sequence[Row]) -> bool:
        """True when every row is in the ledger (or delivered): a lost answer, not a failure."""
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for entry, done in self._held_keys(rows):
                    pipe.exists(entry, done)
                return all(pipe.execute())
        except redis.RedisError:
            return False

    def _store_chunk(self, rows: Sequence[Row]) -> None:
        if self._spooling_now():
            self._spool_rows(rows)
            return
        plan = RetryPlan(ENQUEUE_BUDGET_S if self.spool is None else FAILOVER_BUDGET_S)
        while True:
            try:
                # Safe to repeat after a timeout: enqueue leaves an id it already has untouched.
                self._ledger.enqueue(rows, lane=self._lane)
                return
            except redis.RedisError as exc:
                pause = plan.pause_after(exc)
                if pause is None:
                    if is_retryable(exc) and self._all_held(rows):
                        log.info("enqueue answer lost, events stored event_id=%s", rows[0][0])
                        return
                    if self.spool is not None and is_unavailable(exc):
                        self._spool_rows(rows, cause=exc)
                        return
                    url = redact_url(self.settings.redis_url)
                    raise give_up_error(exc, len(rows), url) from exc
                log.debug("enqueue retry after %s", type(exc).__name__)
                time.sleep(pause)

    def close(self) -> None:
        """Stop the spool drainer and release the Redis connections."""
        self._stop_drainer()
        self._client.close()

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
