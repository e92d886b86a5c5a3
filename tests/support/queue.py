"""What the Celery queue holds: the event ids its messages carry."""

from __future__ import annotations

import json
from typing import Any


def queued_ids(client: Any, queue: str = "eventfwd") -> list[str]:
    """Every event id in the delivery messages waiting in `queue`, oldest message first."""
    ids: list[str] = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        message = json.loads(raw)
        assert message["headers"]["task"] == "eventfwd.deliver"
        ids += json.loads(message["body"])[0][0]
    return ids
