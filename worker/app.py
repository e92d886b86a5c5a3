"""The Celery application, configured from `EVENTFWD_` settings (DESIGN.md §3 rules 1-2).

Celery runs the worker processes (each with a delivery engine, `worker/engine.py`), carries
wake-ups and beat's periodic tasks. acks late + reject on worker lost + prefetch 1: a message
leaves the broker only after its task finished, so a killed worker's message is redelivered;
wake-ups are harmless twice. The visibility timeout is far above the longest task so the broker
never redelivers a task that is still running. Nothing waits inside Celery: delays are scores in
the ledger, and what is sent is decided by the ledger's claim, not by a message's content.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals
from kombu import Queue

from eventfwd.core import task_names as tasks
from eventfwd.core.connection import broker_settings
from eventfwd.core.settings import Settings

log = logging.getLogger(__name__)

VISIBILITY_TIMEOUT_S = 6 * 3600
# The broker's Redis connections: without these a half-open connection (a dead server, a
# dropped route) hangs a worker or beat until TCP gives up, minutes later. The socket timeout
# stays well above kombu's 1 s BRPOP poll.
BROKER_CONNECT_TIMEOUT_S = 5.0
BROKER_SOCKET_TIMEOUT_S = 30.0
# Each retention run stops after 30 s (worker/retention.py); the next one carries on.
RETENTION_INTERVAL_S = 600.0


# No task runs long: a delivery task only wakes the process's engine; a retention run stops
# after 30 s. The limits catch a task stuck on something else entirely.
TASK_SOFT_LIMIT_S, TASK_HARD_LIMIT_S = 120.0, 150.0


def celery_config(settings: Settings) -> dict[str, Any]:
    """Every Celery setting eventfwd relies on, derived from `settings`."""
    # The same server and database as the ledger (its scripts push into the broker's queue
    # list): the URL is translated for kombu (TLS options, sentinel master, unix socket).
    broker = broker_settings(settings.redis_url)
    transport = {
        "visibility_timeout": VISIBILITY_TIMEOUT_S,
        "socket_connect_timeout": BROKER_CONNECT_TIMEOUT_S,
        "socket_timeout": BROKER_SOCKET_TIMEOUT_S,
        **broker.transport_options,
    }
    control = f"{settings.queue}.control"
    return {
        "broker_url": broker.url,
        "broker_transport_options": transport,
        "broker_use_ssl": broker.use_ssl or False,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": TASK_SOFT_LIMIT_S,
        "task_time_limit": TASK_HARD_LIMIT_S,
        "task_default_queue": settings.queue,
        "task_queues": [Queue(settings.queue), Queue(control)],
        "task_routes": {
            tasks.PUMP: {"queue": control},
            tasks.REPLAY: {"queue": control},
            tasks.RETENTION: {"queue": control},
        },
        "worker_send_task_events": False,
        "worker_hijack_root_logger": False,
        # One beat at a time: a second one waits on a lock in Redis (worker/beat.py).
        "beat_scheduler": "worker.beat:LockedScheduler",
        "beat_schedule": {
            "pump": {
                "task": tasks.PUMP,
                "schedule": settings.pump_interval_s,
                "options": {"expires": max(settings.pump_interval_s * 5, 5.0)},
            },
            "replay": {
                "task": tasks.REPLAY,
                "schedule": settings.replay_interval_s,
                "options": {"expires": settings.replay_interval_s},
            },
            "retention": {
                "task": tasks.RETENTION,
                "schedule": RETENTION_INTERVAL_S,
                "options": {"expires": RETENTION_INTERVAL_S},
            },
        },
    }


def create_app(settings: Settings | None = None) -> Celery:
    """Build the Celery app; settings come from the environment unless given."""
    settings = settings or Settings.from_env()
    app = Celery("eventfwd")
    app.conf.update(celery_config(settings))
    app.conf.eventfwd_settings = settings
    from worker import startup as _startup  # noqa: F401  (connects the start-up checks)
    from worker import tasks as _tasks  # noqa: F401  (registers the tasks on this app)
    from worker.observability import install_log_escaping, start_beat_monitoring

    signals.beat_init.connect(start_beat_monitoring, weak=False, dispatch_uid="eventfwd.sentry")
    # Log lines carry event ids: escape control characters once Celery has set up logging.
    signals.after_setup_logger.connect(
        install_log_escaping, weak=False, dispatch_uid="eventfwd.log_escaping"
    )

    return app


app = create_app()
