"""Identifier hashing: SHA-256 (HMAC-SHA-256 with a pepper), as Moloco asks (hashed, never MD5).

`hash_identifier` is deterministic: the same value (and pepper) always gives the same 64 hex
digits, so a user stays one user to Moloco. With `EVENTFWD_HASH_IDENTIFIERS=true` the producer
hashes `user_id`, `device.persistent_id` and `custom_id` of every event at enqueue; an empty
value is left alone (hashing it would make one shared identifier, which Moloco throttles).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace
from typing import Any

from eventfwd.core.schema import ValidEvent

# (object path, field): the identifiers Moloco builds its advertising id from.
HASHED_FIELDS: tuple[tuple[str, ...], ...] = (
    ("user_id",),
    ("custom_id",),
    ("device", "persistent_id"),
)


def hash_identifier(value: str, *, pepper: str | None = None) -> str:
    """Return the SHA-256 hex digest of `value`, keyed with `pepper` (HMAC) when one is given."""
    data = value.encode("utf-8")
    if pepper:
        return hmac.new(pepper.encode("utf-8"), data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def hash_identifiers(event: ValidEvent, *, pepper: str | None = None) -> ValidEvent:
    """Return `event` with its identifiers hashed and its body rebuilt (the id is unchanged)."""
    wire: dict[str, Any] = json.loads(event.body)
    changed = False
    for path in HASHED_FIELDS:
        holder: Any = wire
        for part in path[:-1]:
            holder = holder.get(part) if isinstance(holder, dict) else None
        value = holder.get(path[-1]) if isinstance(holder, dict) else None
        if isinstance(value, str) and value:
            holder[path[-1]] = hash_identifier(value, pepper=pepper)
            changed = True
    if not changed:
        return event
    body = json.dumps(wire, separators=(",", ":"), ensure_ascii=False)
    return replace(event, body=body)
