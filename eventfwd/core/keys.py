"""The Redis key layout, in one place.

Lua scripts receive the prefix and build the same keys with `key()` in `lua/_lib.lua`;
`tests/integration/test_keys.py` runs every script and checks that each key it writes is one
named here.

    {p}:ev:{id}          hash   the envelope: body, platform, state, lane, attempts, times, history
    {p}:ready:{platform} zset   id -> lane + time: claimable now (live lane first, oldest first)
    {p}:sched:{platform} zset   id -> due ms (backoff, 429 pause; parked while the circuit is open)
    {p}:inflight:{platform} zset id -> lease deadline ms (claimed, a POST on its way)
    {p}:active           zset   platforms with ready events: the claim rotation (score 0, by name)
    {p}:rr               string the rotation's turn counter (where the next claim starts)
    {p}:bell             list   the doorbell: at most one ring; an idle delivery engine BLPOPs it
    {p}:engines          zset   delivery engine id -> alive until ms
    {p}:wake             string a Celery wake-up is pending (expires)
    {p}:platforms        set    platforms with anything in the ledger (the pump's walk)
    {p}:seen             zset   platform -> when the pump last found it in the ledger (operators'
                                views list recent ones; the pump drops those silent 30 days)
    {p}:dead             zset   id -> dead_at ms (the envelope keeps state "dead" and the reason)
    {p}:done:{id}        hash   delivery record (delivered_ms, attempts, status, rtt_ms, platform,
                                enqueued_ms), expires; also stops duplicate sends
    {p}:stats            hash   fleet-wide counters (delivered, retried, dead:<reason>, ...)
    {p}:minute:{n}       hash   the same counters for epoch minute n (expire after two hours)
    {p}:seq              string message sequence for unique Celery delivery tags
    {p}:pstats:{platform} hash  the same counters for one platform (failed:<2xx..5xx|none> too)
    {p}:pminute:{platform}:{n} hash one platform's counters for epoch minute n
    {p}:beat             hash   beat's last pump tick (worker/heartbeat.py)
    {p}:retention        hash   the last dead-letter retention run (worker/retention.py)
    {p}:circuit:{platform} hash the platform's circuit breaker
    {p}:rate:{platform}  hash   the platform's token bucket and adaptive rate (lua/rate.lua)
    {p}:conc:{platform}  hash   the platform's adaptive in-flight cap (lua/concurrency.lua)
    {p}:pause:{platform} hash   an operator paused the platform (by, at_ms, reason)
    {p}:hist:{platform}  hash   latency histograms: round trip by status class, enqueue to
                                delivery (core/latency.py)
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

    def ready(self, platform_id: str) -> str:
        return f"{self.prefix}:ready:{platform_id}"

    def inflight(self, platform_id: str) -> str:
        return f"{self.prefix}:inflight:{platform_id}"

    @property
    def seen(self) -> str:
        return f"{self.prefix}:seen"

    @property
    def active(self) -> str:
        return f"{self.prefix}:active"

    @property
    def rr(self) -> str:
        return f"{self.prefix}:rr"

    @property
    def bell(self) -> str:
        return f"{self.prefix}:bell"

    @property
    def engines(self) -> str:
        return f"{self.prefix}:engines"

    @property
    def wake(self) -> str:
        return f"{self.prefix}:wake"

    def conc(self, platform_id: str) -> str:
        return f"{self.prefix}:conc:{platform_id}"

    def pause(self, platform_id: str) -> str:
        return f"{self.prefix}:pause:{platform_id}"

    def lock(self, name: str) -> str:
        return f"{self.prefix}:lock:{name}"

    def hist(self, platform_id: str) -> str:
        return f"{self.prefix}:hist:{platform_id}"

    @property
    def override_owners(self) -> str:
        return f"{self.prefix}:override_owners"
