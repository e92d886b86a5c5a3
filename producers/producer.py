"""`EventProducer`: validate, then write ledger entry and queue message in one atomic step."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import redis

from core.connection import connect, redact_url
from core.errors import EnqueueError, InvalidEvent
from core.ledger import Ledger
from core.schema import ValidEvent, validate_event, validate_platform_id
from core.settings import Settings

log = logging.getLogger(__name__)

# Redis unreachable: give up after about a second in total, never hang a web request.
ENQUEUE_BUDGET_S = 1.0
CONNECT_TIMEOUT_S = 0.25
SOCKET_TIMEOUT_S = 0.5
RETRY_PAUSE_S = (0.02, 0.05, 0.1, 0.2, 0.3)


class EventProducer:
    """Validate events and hand them to the ledger; safe to share between threads."""

    def __init__(self, redis_url: str | None = None, *, settings: Settings | None = None) -> None:
        settings = settings or Settings.from_env()
        if redis_url is not None:
            settings = settings.replace(redis_url=redis_url)
        self.settings = settings
        self._client = connect(
            settings.redis_url,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=SOCKET_TIMEOUT_S,
            health_check_interval=30,
        )
        self._ledger = Ledger(self._client, settings)

    def validate(self, event: Mapping[str, Any]) -> ValidEvent:
        """Return the event as it will be sent, or raise `InvalidEvent` naming every problem."""
        return validate_event(event, strict_fields=self.settings.strict_fields)

    def enqueue(self, platform_id: str, event: Mapping[str, Any]) -> str:
        """Validate and enqueue one event for `platform_id`; return its id."""
        return self.enqueue_validated(platform_id, [self.validate(event)])[0]

    def enqueue_many(self, platform_id: str, events: Iterable[Mapping[str, Any]]) -> list[str]:
        """Validate every event, then enqueue them all in one round trip; return their ids.

        Any invalid event raises `InvalidEvent` (its `index` says which) before anything is
        written. Enqueueing an id that is already waiting or was delivered recently is a no-op.
        """
        valid: list[ValidEvent] = []
        for index, event in enumerate(events):
            try:
                valid.append(self.validate(event))
            except InvalidEvent as exc:
                raise InvalidEvent(exc.errors, index=index) from None
        return self.enqueue_validated(platform_id, valid)

    def enqueue_validated(self, platform_id: str, events: Sequence[ValidEvent]) -> list[str]:
        """Enqueue events that `validate()` already accepted, in one round trip."""
        platform_id = validate_platform_id(platform_id)
        if not events:
            return []
        rows = [(v.id, platform_id, v.body, int(v.wire["timestamp"])) for v in events]
        self._store(rows)
        return [v.id for v in events]

    def _store(self, rows: Sequence[tuple[str, str, str, int]]) -> None:
        deadline = time.monotonic() + ENQUEUE_BUDGET_S
        pauses = iter(RETRY_PAUSE_S)
        while True:
            try:
                # Safe to repeat after a timeout: enqueue leaves an id it already has untouched.
                self._ledger.enqueue(rows)
                return
            except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError) as exc:
                pause = next(pauses, None)
                if pause is None or time.monotonic() + pause >= deadline:
                    url = redact_url(self.settings.redis_url)
                    raise EnqueueError(
                        f"could not store {len(rows)} event(s): Redis at {url} unreachable "
                        f"({type(exc).__name__}: {exc})"
                    ) from exc
                log.debug("enqueue retry after %s", type(exc).__name__)
                time.sleep(pause)
            except redis.ResponseError as exc:
                raise EnqueueError(f"Redis refused the enqueue: {exc}") from exc

    def close(self) -> None:
        """Release the Redis connections."""
        self._client.close()

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
