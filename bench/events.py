"""Events to benchmark with: the dev kit's samples (every event type, hashed ids, unique ids)."""

from __future__ import annotations

from typing import Any

from eventfwd.core.schema import validate_event
from eventfwd.devkit.samples import sample_events


def events(count: int, seed: str) -> list[dict[str, Any]]:
    """`count` valid events as a web handler would pass them to `enqueue()`."""
    return sample_events(count, seed=seed)


def wire_events(count: int, seed: str) -> list[dict[str, Any]]:
    """`count` events already in Moloco's wire form, for the baselines that skip validation."""
    return [validate_event(e).wire for e in sample_events(count, seed=seed)]


def mean_body_bytes(sample: list[dict[str, Any]]) -> float:
    """The mean size of the JSON body eventfwd stores and POSTs for these events."""
    sizes = [len(validate_event(e).body.encode()) for e in sample]
    return sum(sizes) / len(sizes)
