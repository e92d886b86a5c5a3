"""The Redis key layout, in one place.

Lua scripts receive the prefix and build the same keys with `key()` in `lua/_lib.lua`;
`tests/unit/test_keys.py` holds the two in step.

    {p}:ev:{id}          hash   the envelope: body, platform, state, attempts, timestamps, history
    {p}:sched:{platform} zset   id -> next action ms (due, lease deadline, republish deadline)
    {p}:platforms        set    every platform that ever had a schedule
    {p}:dead             zset   id -> dead_at ms (the envelope keeps state "dead" and the reason)
    {p}:done:{id}        string short-lived "delivered" marker that stops duplicate sends
    {p}:stats            hash   fleet-wide counters (delivered, retried, dead:<reason>, ...)
    {p}:minute:{n}       hash   the same counters for epoch minute n (expire after two hours)
    {p}:seq              string message sequence for unique Celery delivery tags
    {p}:pstats:{platform} hash  the same counters for one platform (failed:<2xx..5xx|none> too)
    {p}:pminute:{platform}:{n} hash one platform's counters for epoch minute n
    {p}:beat             hash   beat's last pump tick (worker/heartbeat.py)
    {p}:retention        hash   the last dead-letter retention run (worker/retention.py)
    {p}:circuit:{platform} hash the platform's circuit breaker
    {p}:rate:{platform}  hash   the platform's token bucket and adaptive rate
    {p}:lock:{name}      string a lock, JSON {token, host, pid, since_ms}, expiring: `beat` (the
                                one beat that schedules; a second one waits), `replay` and
                                `retention` (one run at a time); core/lock.py
    {queue}              list   the Celery (kombu) queue the messages go to
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str

    def event(self, event_id: str) -> str:
        return f"{self.prefix}:ev:{event_id}"

    def sched(self, platform_id: str) -> str:
        return f"{self.prefix}:sched:{platform_id}"

    @property
    def platforms(self) -> str:
        return f"{self.prefix}:platforms"

    @property
    def dead(self) -> str:
        return f"{self.prefix}:dead"

    def done(self, event_id: str) -> str:
        return f"{self.prefix}:done:{event_id}"

    @property
    def stats(self) -> str:
        return f"{self.prefix}:stats"

    def minute(self, epoch_minute: int) -> str:
        return f"{self.prefix}:minute:{epoch_minute}"

    @property
    def seq(self) -> str:
        return f"{self.prefix}:seq"

    def platform_stats(self, platform_id: str) -> str:
        return f"{self.prefix}:pstats:{platform_id}"

    def platform_minute(self, platform_id: str, epoch_minute: int) -> str:
        return f"{self.prefix}:pminute:{platform_id}:{epoch_minute}"

    @property
    def beat(self) -> str:
        return f"{self.prefix}:beat"

    @property
    def retention(self) -> str:
        return f"{self.prefix}:retention"

    def circuit(self, platform_id: str) -> str:
        return f"{self.prefix}:circuit:{platform_id}"

    def rate(self, platform_id: str) -> str:
        return f"{self.prefix}:rate:{platform_id}"

    def lock(self, name: str) -> str:
        return f"{self.prefix}:lock:{name}"
