"""Enqueue user events from web handlers: validated, stored durably in Redis, queued for delivery.

    from producers import EventProducer, InvalidEvent, EnqueueError
    from producers import AsyncEventProducer          # the same, for asyncio (redis.asyncio)

This side never imports the worker: it writes the ledger and publishes by task name. The web
framework integrations are `producers.flask`, `producers.django` and `producers.fastapi`.
"""

from eventfwd.core.errors import EnqueueError, InvalidEvent
from producers.aio import AsyncEventProducer
from producers.hashing import hash_identifier
from producers.producer import EventProducer

__all__ = [
    "AsyncEventProducer",
    "EnqueueError",
    "EventProducer",
    "InvalidEvent",
    "hash_identifier",
]
