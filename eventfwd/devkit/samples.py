"""Sample events of every type, for `eventfwd dev` and demos. Identifiers are SHA-256 hashes."""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any


def _h(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def sample_events(n: int, *, seed: str = "demo") -> list[dict[str, Any]]:
    """`n` valid events cycling through all eight event types, timestamped now."""
    now_ms = int(time.time() * 1000)
    item = {"id": "sku-1193", "price": {"currency": "USD", "amount": 19.99}, "quantity": 1}
    shapes: list[dict[str, Any]] = [
        {"event_type": "HOME", "page_id": "home"},
        {"event_type": "LAND", "page_id": "product/1193", "referrer_page_id": "search-engine"},
        {"event_type": "PAGE_VIEW", "page_id": "categories/12"},
        {"event_type": "ITEM_PAGE_VIEW", "items": [item], "page_id": "product/1193"},
        {"event_type": "SEARCH", "search_query": "eye cream", "page_id": "search"},
        {"event_type": "ADD_TO_CART", "items": [{**item, "quantity": 2}]},
        {"event_type": "ADD_TO_WISHLIST", "items": [{"item_group_id": "grp-1193"}]},
        {
            "event_type": "PURCHASE",
            "items": [{**item, "quantity": 2}],
            "revenue": {"currency": "USD", "amount": 39.98},
        },
    ]
    events = []
    for i in range(n):
        user = f"{seed}-user-{i % 17}"
        events.append(
            {
                "id": str(uuid.uuid4()),
                "timestamp": now_ms - (n - i),
                "channel_type": "SITE",
                "user_id": _h(user),
                "device": {"persistent_id": _h(user + "-device"), "language": "en"},
                **shapes[i % len(shapes)],
            }
        )
    return events


def invalid_samples() -> list[dict[str, Any]]:
    """Events the producer refuses before anything is stored, to show its errors."""
    now_ms = int(time.time() * 1000)
    return [
        {"event_type": "SEARCH", "timestamp": now_ms, "channel_type": "SITE", "serach_query": "x"},
        {"event_type": "PURCHASE", "timestamp": now_ms // 1000, "channel_type": "APP",
         "user_id": _h("u"), "items": [{"price": {"currency": "usd", "amount": 5}}]},
    ]  # fmt: skip
