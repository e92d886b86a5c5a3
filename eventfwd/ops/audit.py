"""Every operator action, logged with who, what and how many, and reported to Sentry.

Called by the ops models (platform pause, resume, circuit reset) and by the bulk dead-letter
actions of both front ends. The log line is the audit trail
(`eventfwd.audit` logger, INFO); Sentry gets an info event grouped by action when it is on.
"""

from __future__ import annotations

import logging

from worker.observability import report_operator_action

log = logging.getLogger("eventfwd.audit")


def record_action(action: str, *, by: str, count: int, what: str = "", source: str) -> None:
    """Log and report one action: `action` (e.g. dead.replay), `by` whom, on `count` items."""
    log.info("operator action=%s by=%s count=%d source=%s what=%s", action, by, count, source, what)
    report_operator_action(action=action, by=by, count=count, what=what, source=source)
