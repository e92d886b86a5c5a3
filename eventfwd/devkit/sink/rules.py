"""Body validation: the OpenAPI schema first, then the rules Moloco's server enforces.

Messages of the server rules are Moloco's own (API-NOTES.md); the first broken rule is reported.
"""

from __future__ import annotations

import json
from typing import Any

from eventfwd.devkit.sink.schema import as_int, body_schema, check

FUTURE_SLACK_MS = 60_000
# 2001-09-09 in ms: anything smaller is a timestamp in seconds, not milliseconds.
MIN_TIMESTAMP_MS = 1_000_000_000_000
ITEM_EVENT_TYPES = frozenset({"ITEM_PAGE_VIEW", "ADD_TO_CART", "ADD_TO_WISHLIST", "PURCHASE"})

NO_IDENTIFIER = "no available valid identifier to construct Moloco advertising ID"
MISSING_SEARCH_QUERY = "missing search_query"
MISSING_PAGE_ID = "missing page_id"
INVALID_ITEM = "invalid item: either id or item_group_id must be set"
INVALID_TIMESTAMP = "invalid timestamp"
APP_NEEDS_OS = "device os must contain ios or android for the app channel type"


class EventRejected(Exception):
    """The body is not an event Moloco would accept; `message` is the server's answer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def read_event(body: bytes, now_ms: int) -> dict[str, Any]:
    """Parse and check one request body; return the event or raise `EventRejected`."""
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise EventRejected(f"invalid JSON body: {exc}") from None
    if type(event) is not dict:
        raise EventRejected("request body must be a JSON object")
    error = check(body_schema(), event) or server_rule_error(event, now_ms)
    if error:
        raise EventRejected(error)
    return event


def server_rule_error(event: dict[str, Any], now_ms: int) -> str | None:
    """Return the message of the first server rule `event` breaks, or None.

    Assumes the event already passed the schema, so present fields have the right types.
    """
    event_type = event["event_type"]
    if event_type == "UNKNOWN_EVENT_TYPE":
        return "unsupported event_type UNKNOWN_EVENT_TYPE"
    channel_type = event["channel_type"]
    if channel_type == "UNKNOWN_CHANNEL_TYPE":
        return "unsupported channel_type UNKNOWN_CHANNEL_TYPE"

    timestamp_ms = as_int(event["timestamp"])
    if timestamp_ms is None or not MIN_TIMESTAMP_MS <= timestamp_ms <= now_ms + FUTURE_SLACK_MS:
        return INVALID_TIMESTAMP

    device = event.get("device") or {}
    if not (event.get("user_id") or device.get("persistent_id") or event.get("custom_id")):
        return NO_IDENTIFIER

    if event_type == "SEARCH" and not event.get("search_query"):
        return MISSING_SEARCH_QUERY
    if event_type == "PAGE_VIEW" and not event.get("page_id"):
        return MISSING_PAGE_ID

    items = event.get("items") or []
    if event_type in ITEM_EVENT_TYPES and not items:
        return INVALID_ITEM
    for item in items:
        if not item or not (item.get("id") or item.get("item_group_id")):
            return INVALID_ITEM

    if channel_type == "APP":
        os_name = (device.get("os") or "").lower()
        if "ios" not in os_name and "android" not in os_name:
            return APP_NEEDS_OS
    return None
