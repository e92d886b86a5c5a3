"""Baseline: the plain way, one Celery task per event that POSTs it with `requests`.

Celery's default settings (acks early, prefetch 4, no result backend), `requests.post` per
call (a new connection each time, as a plain task does), its own broker database. The worker is
`celery -A bench.baseline_celery worker --pool prefork --concurrency 2`; the bench process
publishes with `post.delay(event)`, where `event` is already the wire dict (validation is not
charged to the baseline).
"""

from __future__ import annotations

import os
from typing import Any

import requests
from celery import Celery

TASK_NAME = "bench.post"
HTTP_TIMEOUT_S = 10.0


def make_app(broker_url: str) -> Celery:
    app = Celery("bench_baseline", broker=broker_url)
    app.conf.broker_connection_retry_on_startup = True
    return app


app = make_app(os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/1"))
_SINK_URL = os.environ.get("BENCH_SINK_URL", "http://127.0.0.1:8090")
_API_KEY = os.environ.get("BENCH_API_KEY", "dev-key")
_PLATFORM = os.environ.get("BENCH_PLATFORM", "bench-platform")


@app.task(name=TASK_NAME)
def post(event: dict[str, Any]) -> None:
    """POST one event to Moloco (here: the sink)."""
    url = f"{_SINK_URL}/rmp/event/v1/platforms/{_PLATFORM}/userevents"
    response = requests.post(
        url, json=event, headers={"x-api-key": _API_KEY}, timeout=HTTP_TIMEOUT_S
    )
    response.raise_for_status()


def worker_env(broker_url: str, sink_url: str, api_key: str, platform_id: str) -> dict[str, str]:
    """The variables the baseline worker reads (on top of `harness.base_env`)."""
    return {
        "BENCH_BROKER_URL": broker_url,
        "BENCH_SINK_URL": sink_url,
        "BENCH_API_KEY": api_key,
        "BENCH_PLATFORM": platform_id,
    }


def publisher(broker_url: str) -> Any:
    """A `post` task bound to an app on `broker_url`, for `.delay()` from the bench process."""
    local = make_app(broker_url)
    return local.task(name=TASK_NAME)(post.run)
