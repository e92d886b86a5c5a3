"""What the thread and asyncio producers share: validation, hashing, rows, and the spool."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from eventfwd.core.connection import redact_url
from eventfwd.core.errors import FieldError, InvalidEvent
from eventfwd.core.keys import Keys
from eventfwd.core.ledger import ENQUEUE_ROWS_PER_CALL, Ledger
from eventfwd.core.schema import (
    ValidEvent,
    check_stored,
    validate_event,
    validate_events,
    validate_platform_id,
)
from eventfwd.core.schema.models import new_event_id
from eventfwd.core.settings import Settings
from producers.drain import SpoolDrainer
from producers.failover import OutageCircuit
from producers.hashing import hash_identifier, hash_identifiers
from producers.spool import Row, Spool, SpoolStatus

log = logging.getLogger(__name__)

BYTES_PER_MB = 1024 * 1024
# Called after each enqueue with (seconds it took, events, whether it succeeded).
EnqueueObserver = Callable[[float, int, bool], None]
# Ids scoped by `id_namespace` are UUIDs (version 5) in this namespace of eventfwd's own.
ID_NAMESPACE_UUID = uuid.UUID("7d3c1f0e-5b1a-4c55-9a55-6576656e7466")


def resolve_settings(redis_url: str | None, settings: Settings | None) -> Settings:
    """`settings` (default: from the environment), with `redis_url` when one is given."""
    settings = settings or Settings.from_env()
    if redis_url is not None:
        settings = settings.replace(redis_url=redis_url)
    return settings


class ProducerBase:
    """Validation, identifier hashing and the spool; subclasses talk to Redis."""

    settings: Settings

    def _init_spool(self, ledger: Callable[[], Ledger]) -> None:
        self._enqueue_observers: list[EnqueueObserver] = []
        self._circuit = OutageCircuit()
        self.spool: Spool | None = None
        self._drainer: SpoolDrainer | None = None
        self._looked_in_pid = 0
        if self.settings.spool_dir:
            self.spool = Spool(
                self.settings.spool_dir,
                max_bytes=int(self.settings.spool_max_mb * BYTES_PER_MB),
            )
            self._drainer = SpoolDrainer(self.spool, ledger, self._circuit)

    def observe_enqueues(self, observer: EnqueueObserver) -> None:
        """Call `observer(duration_s, events, ok)` after each enqueue (`producers.metrics`)."""
        self._enqueue_observers.append(observer)

    def _observed(self, started_s: float, events: int, ok: bool) -> None:
        duration_s = time.perf_counter() - started_s
        for observer in self._enqueue_observers:
            observer(duration_s, events, ok)

    def validate(self, event: Mapping[str, Any]) -> ValidEvent:
        """Return the event as it will be sent, or raise `InvalidEvent` naming every problem."""
        return validate_event(event, strict_fields=self.settings.strict_fields)

    def validate_many(self, events: Iterable[Mapping[str, Any]]) -> list[ValidEvent]:
        """Validate every event; the first invalid one raises `InvalidEvent` with its `index`."""
        return validate_events(events, strict_fields=self.settings.strict_fields)

    def hash_identifier(self, value: str) -> str:
        """Hash `value` as the producer hashes identifiers (SHA-256, with the pepper if set)."""
        return hash_identifier(value, pepper=self.settings.hash_pepper)

    @staticmethod
    def _chunks(rows: Sequence[Row]) -> list[Sequence[Row]]:
        """Rows in ledger calls of a bounded size, so that no call blocks Redis for long."""
        return [
            rows[start : start + ENQUEUE_ROWS_PER_CALL]
            for start in range(0, len(rows), ENQUEUE_ROWS_PER_CALL)
        ]

    def _held_keys(self, rows: Sequence[Row]) -> list[tuple[str, str]]:
        """Per row: its ledger entry and its delivered marker; either one means it is stored."""
        keys = Keys(self.settings.key_prefix)
        return [(keys.event(row[0]), keys.done(row[0])) for row in rows]

    def _rows(
        self, platform_id: str, events: Sequence[ValidEvent], id_namespace: str | None = None
    ) -> list[Row]:
        platform_id = validate_platform_id(platform_id)
        if not self.settings.allows_platform(platform_id):
            raise InvalidEvent(
                [
                    FieldError(
                        "platform_id",
                        "platform_not_allowed",
                        "is not a platform this service sends events to",
                    )
                ]
            )
        if isinstance(events, str | bytes) or not isinstance(events, Sequence):
            raise InvalidEvent([FieldError("", "type", "events must be a list of ValidEvent")])
        for index, valid in enumerate(events):
            if not isinstance(valid, ValidEvent):
                raise InvalidEvent([FieldError("", "type", "is not a ValidEvent")], index=index)
            try:
                check_stored(valid.id, platform_id, valid.body)
            except InvalidEvent as exc:
                raise InvalidEvent(exc.errors, index=index) from None
        if id_namespace is not None or self.settings.client_ids == "ignore":
            events = [self._with_id(v, id_namespace) for v in events]
        if self.settings.hash_identifiers:
            pepper = self.settings.hash_pepper
            events = [hash_identifiers(v, pepper=pepper) for v in events]
        return [(v.id, platform_id, v.body, v.event_ms) for v in events]

    def _with_id(self, valid: ValidEvent, id_namespace: str | None) -> ValidEvent:
        """The event under the id policy: fresh (`client_ids=ignore`) or scoped to a caller."""
        if self.settings.client_ids == "ignore":
            event_id = new_event_id()
        else:
            if not isinstance(id_namespace, str) or not id_namespace:
                raise InvalidEvent([FieldError("", "type", "id_namespace must be a non-empty str")])
            event_id = str(uuid.uuid5(ID_NAMESPACE_UUID, f"{id_namespace}\x00{valid.id}"))
        wire = json.loads(valid.body)
        wire["id"] = event_id
        body = json.dumps(wire, separators=(",", ":"), ensure_ascii=False)
        return ValidEvent(id=event_id, body=body, event_ms=valid.event_ms)

    # -- the spool -------------------------------------------------------------------------

    def _look_for_leftovers(self) -> None:
        """Once per process: wake the drainer if the spool holds batches from earlier."""
        pid = os.getpid()
        if self._looked_in_pid == pid or self.spool is None or self._drainer is None:
            return
        self._looked_in_pid = pid
        if self.spool.has_work():
            self._drainer.wake()

    def _spooling_now(self) -> bool:
        """True while this process believes Redis is down: spool without trying it."""
        self._look_for_leftovers()
        return self.spool is not None and self._circuit.is_open()

    def _spool_rows(self, rows: Sequence[Row], cause: BaseException | None = None) -> None:
        """Write rows to the spool (`EnqueueError` when it cannot) and wake the drainer."""
        assert self.spool is not None and self._drainer is not None
        if cause is not None:
            if not self._circuit.is_open():
                log.warning(
                    "Redis at %s unavailable (%s: %s); spooling events to %s",
                    redact_url(self.settings.redis_url),
                    type(cause).__name__,
                    cause,
                    self.spool.directory,
                )
            self._circuit.open()
        self.spool.append(rows)
        log.debug("spooled %d event(s) event_id=%s", len(rows), rows[0][0])
        self._drainer.wake()

    def spool_status(self) -> SpoolStatus | None:
        """What the spool holds, or None when no spool is configured."""
        return self.spool.status() if self.spool is not None else None

    def _stop_drainer(self) -> None:
        if self._drainer is not None:
            self._drainer.stop()
