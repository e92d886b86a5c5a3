"""Enqueue user events from web handlers: validated, stored durably in Redis, queued for delivery.

    from producers import EventProducer, InvalidEvent, EnqueueError

This side never imports the worker: it writes the ledger and publishes by task name.
"""

from core.errors import EnqueueError, InvalidEvent
from producers.producer import EventProducer

__all__ = ["EnqueueError", "EventProducer", "InvalidEvent"]
