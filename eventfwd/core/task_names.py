"""Celery task names: stable strings, so a renamed module never orphans queued messages."""

DELIVER = "eventfwd.deliver"
PUMP = "eventfwd.pump"
REPLAY = "eventfwd.replay"
RETENTION = "eventfwd.retention"
