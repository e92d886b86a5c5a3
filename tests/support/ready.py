"""What the ledger holds ready to claim: the event ids of every platform's ready set."""

from __future__ import annotations

from typing import Any


def ready_ids(client: Any, prefix: str = "eventfwd") -> list[str]:
    """Every event id ready to claim, across platforms (each id once: the sets are sets)."""
    ids: list[str] = []
    for key in sorted(client.scan_iter(match=f"{prefix}:ready:*")):
        ids += [m.decode() if isinstance(m, bytes) else m for m in client.zrange(key, 0, -1)]
    return ids
