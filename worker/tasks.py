"""Celery tasks: thin adapters over the delivery engine and the ledger, with stable names."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from celery import Task, shared_task

from eventfwd.core import task_names as names
from eventfwd.core.connection import connect
from eventfwd.core.ledger import Ledger
from eventfwd.core.lock import RedisLock, run_alone
from eventfwd.core.settings import Settings
from eventfwd.core.vocabulary import DeadReason
from worker import observability, replay
from worker.delivery import Deliverer
from worker.engine import DeliveryEngine
from worker.heartbeat import record_beat_tick
from worker.http_client import HttpClient
from worker.retention import enforce_retention

log = logging.getLogger(__name__)

LEDGER_RETRY_BUDGET_S = 5.0


@dataclass
class _ProcessState:
    pid: int
    ledger: Ledger
    # Keeps this process's delivery threads busy with what the ledger has ready.
    engine: DeliveryEngine


_state: _ProcessState | None = None
_state_lock = threading.Lock()


def process_state(settings: Settings) -> _ProcessState:
    """This process's ledger and delivery engine (not started), made anew after a fork."""
    global _state
    with _state_lock:
        if _state is None or _state.pid != os.getpid():
            client = connect(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
            # Retry a script through a Redis blip: above all, an ack lost after Moloco's 200
            # would otherwise mean a resend once the lease expires.
            ledger = Ledger(client, settings, retry_budget_s=LEDGER_RETRY_BUDGET_S)
            threads = settings.delivery_threads
            http = HttpClient(timeout_s=settings.http_timeout_s, pool_size=threads)
            engine = DeliveryEngine(Deliverer(settings, ledger, http), threads=threads)
            _state = _ProcessState(os.getpid(), ledger, engine)
        return _state


def start_engine(settings: Settings) -> DeliveryEngine:
    """Start this process's delivery engine if it is not running."""
    engine = process_state(settings).engine
    engine.start()
    return engine


def stop_engine(timeout_s: float) -> None:
    """Stop this process's engine, settling what it has in flight (a clean shutdown)."""
    if _state is not None and _state.pid == os.getpid():
        _state.engine.stop(timeout_s)


def _settings(task: Task) -> Settings:
    settings: Settings = task.app.conf.eventfwd_settings
    return settings


@shared_task(name=names.DELIVER, bind=True, ignore_result=True)
def deliver(self: Task, event_ids: list[str] | None = None) -> dict[str, str]:
    """Wake this process's delivery engine (starting it if need be). The ids an older version
    put in the message are only a hint: the engine claims whatever the ledger has ready."""
    engine = start_engine(_settings(self))
    engine.wake()
    return {"engine": engine.engine_id}


@shared_task(name=names.PUMP, bind=True, ignore_result=True)
def pump(self: Task) -> dict[str, Any]:
    """Make due events ready, recover lost work, release circuit probes."""
    ledger = process_state(_settings(self)).ledger
    result = ledger.pump()
    record_beat_tick(ledger.client, ledger.keys)
    for event_id, platform_id in result.poisoned_ids:
        observability.report_dead_letter(
            event_id=event_id,
            platform_id=platform_id,
            reason=DeadReason.POISON,
            status="",
            message="the worker holding it died too often",
        )
    if result.reaped or result.poisoned:
        log.warning(
            "pump recovered %d expired lease(s), dead-lettered %d poison event(s)",
            result.reaped,
            result.poisoned,
        )
    return {"published": result.published, "reaped": result.reaped, "probes": result.probes}


def _one_run_at_a_time(task: Task, ledger: Ledger, name: str) -> RedisLock:
    """The lock that keeps a second run of `name` (a duplicated message, a second beat) out.

    It lives as long as the task's hard time limit, at which the (prefork) pool kills a run,
    so it cannot expire under a live run; a run killed otherwise frees it after that long.
    """
    ttl_s = float(task.app.conf.task_time_limit or 60)
    return RedisLock(ledger.client, ledger.keys.lock(name), ttl_s=ttl_s)


@shared_task(name=names.REPLAY, bind=True, ignore_result=True)
def replay_dead_letters(self: Task) -> dict[str, int]:
    """Replay transient-class dead letters, up to the per-event replay cap."""
    ledger = process_state(_settings(self)).ledger
    lock = _one_run_at_a_time(self, ledger, "replay")
    counts = run_alone(lock, "dead-letter replay", lambda: replay.replay_transient(ledger))
    if counts is None:
        return {"replayed": 0, "skipped": 0, "runs_skipped": 1}
    replayed, skipped = counts
    if replayed:
        log.info("replayed %d dead letter(s) (%d not eligible)", replayed, skipped)
    return {"replayed": replayed, "skipped": skipped}


@shared_task(name=names.RETENTION, bind=True, ignore_result=True)
def enforce_dead_letter_retention(self: Task) -> dict[str, int]:
    """Trim dead letters over the age and count limits, exporting them first when configured."""
    settings = _settings(self)
    ledger = process_state(settings).ledger
    lock = _one_run_at_a_time(self, ledger, "retention")
    result = run_alone(lock, "dead-letter retention", lambda: enforce_retention(ledger, settings))
    if result is None:
        return {"due": 0, "trimmed": 0, "exported": 0, "runs_skipped": 1}
    return {"due": result.due, "trimmed": result.trimmed, "exported": result.exported}
