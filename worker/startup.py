"""What a worker does when it starts and stops: check the configuration and the Redis it
depends on, and run one delivery engine in each pool process (`worker/engine.py`)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis
from celery import signals

from eventfwd.core.connection import connect
from eventfwd.core.settings import Settings
from worker.observability import init_sentry
from worker.persistence import persistence_problems

log = logging.getLogger(__name__)


@signals.worker_init.connect
def check_at_start(sender: Any = None, **_: Any) -> None:
    """Refuse to start without a Moloco endpoint; warn loudly about a non-durable Redis."""
    settings: Settings = sender.app.conf.eventfwd_settings
    init_sentry(settings, component="worker")  # first, so a failing check below is reported
    settings.require_delivery_config()
    if settings.platforms and settings.allowed_platforms is None:
        log.warning(
            "per-platform settings (%s) without EVENTFWD_ALLOWED_PLATFORMS: platform ids that "
            "differ only in case or - . _ ~ share them, so each goes to the first platform id "
            "that uses it and look-alikes become not_allowed dead letters; set the allow-list",
            ", ".join(f"EVENTFWD_PLATFORM_{key}_*" for key in sorted(settings.platforms)),
        )
    client = connect(settings.redis_url, socket_connect_timeout=5, socket_timeout=5)
    try:
        for problem in persistence_problems(client):
            log.warning("redis persistence: %s", problem)
    except redis.RedisError as exc:  # the broker reconnects on its own; this is advice only
        log.warning("could not check Redis persistence: %s", exc)
    finally:
        client.close()


# A pool process starts its engine this long after it starts: Celery checks once, right after
# the worker is ready, that no pool process has exited, and stops the whole worker if one has;
# an engine sending at once would open that window to a crash of its first request.
ENGINE_START_DELAY_S = 1.0


# the start-up timer of this process's engine, cancelled if the process stops before it fires
_start_timer: threading.Timer | None = None


@signals.worker_process_init.connect
def start_delivery_engine(**_: Any) -> None:
    """Each pool process (prefork child, or the solo pool's process) runs a delivery engine."""
    global _start_timer
    from worker.app import app
    from worker.tasks import start_engine

    _start_timer = threading.Timer(ENGINE_START_DELAY_S, start_engine, [app.conf.eventfwd_settings])
    _start_timer.daemon = True
    _start_timer.start()


@signals.worker_process_shutdown.connect
@signals.worker_shutdown.connect
def stop_delivery_engine(**_: Any) -> None:
    """Settle what is in flight before the process exits (a POST takes at most the timeout).

    A prefork child hears worker_process_shutdown; pools without child processes (threads,
    solo) ran the engine in the main process, which hears worker_shutdown. An engine not yet
    started is never started.
    """
    from worker.app import app
    from worker.tasks import stop_engine

    if _start_timer is not None:
        _start_timer.cancel()
    settings: Settings = app.conf.eventfwd_settings
    stop_engine(settings.http_timeout_s + 5)
