"""Checks run once when a worker starts: configuration and the Redis it depends on."""

from __future__ import annotations

import logging
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
    client = connect(settings.redis_url, socket_connect_timeout=5, socket_timeout=5)
    try:
        for problem in persistence_problems(client):
            log.warning("redis persistence: %s", problem)
    except redis.RedisError as exc:  # the broker reconnects on its own; this is advice only
        log.warning("could not check Redis persistence: %s", exc)
    finally:
        client.close()
