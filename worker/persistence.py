"""Is the Redis we write to durable? (DESIGN.md §3 rule 4: AOF on, no eviction.)"""

from __future__ import annotations

import redis


def _config(client: redis.Redis, name: str) -> str | None:
    for key, value in client.config_get(name).items():
        if (key.decode() if isinstance(key, bytes) else key) == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def persistence_problems(client: redis.Redis) -> list[str]:
    """Say what makes this Redis unsafe for the ledger; empty when it is fine."""
    try:
        aof = _config(client, "appendonly")
        policy = _config(client, "maxmemory-policy")
    except redis.ResponseError as exc:
        return [f"cannot read Redis CONFIG ({exc}); make sure appendonly=yes and noeviction"]
    problems = []
    if aof != "yes":
        problems.append("appendonly is off: a Redis restart loses every event not yet delivered")
    if policy != "noeviction":
        problems.append(
            f"maxmemory-policy is {policy}: Redis may evict queued events when memory is full"
        )
    return problems
