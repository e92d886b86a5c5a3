"""Small valid events for schema tests: `minimal(event_type, **overrides)` against a fixed clock."""

from __future__ import annotations

from typing import Any

NOW_MS = 1_767_225_700_000
DROP = object()  # an override that removes the key
ITEM_TYPES = ("ITEM_PAGE_VIEW", "ADD_TO_CART", "ADD_TO_WISHLIST", "PURCHASE")


def usd(amount: Any = 1.5) -> dict[str, Any]:
    return {"currency": "USD", "amount": amount}


def minimal(event_type: Any = "HOME", **overrides: Any) -> dict[str, Any]:
    """A valid event of the given type with only what its rules need; overrides win."""
    event: dict[str, Any] = {
        "event_type": event_type,
        "timestamp": NOW_MS - 1_000,
        "channel_type": "SITE",
        "user_id": "u-1",
    }
    if event_type in ITEM_TYPES:
        event["items"] = [{"id": "sku-1"}]
    if event_type == "PURCHASE":
        event["revenue"] = usd()
    if event_type == "SEARCH":
        event["search_query"] = "eye cream"
    if event_type == "PAGE_VIEW":
        event["page_id"] = "home"
    for key, value in {"event_type": event_type, **overrides}.items():
        if value is DROP:
            event.pop(key, None)
        else:
            event[key] = value
    return event
