"""The event schema: Moloco's fields (`models`), key vetting (`clean`), the fast path (`fast`)
and the whole check that builds the body to POST (`validate`)."""

from eventfwd.core.schema.validate import (
    MAX_EVENT_BYTES,
    ValidEvent,
    check_stored,
    validate_event,
    validate_events,
    validate_platform_id,
)

__all__ = [
    "MAX_EVENT_BYTES",
    "ValidEvent",
    "check_stored",
    "validate_event",
    "validate_events",
    "validate_platform_id",
]
