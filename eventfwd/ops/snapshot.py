"""A snapshot of the fleet, read from Redis: what `eventfwd stats`, `doctor` and the metrics show.

The backlog's counts per state come from the sizes of each platform's ready, schedule and
in-flight sets (exact). The oldest event's age comes from reading each entry's timestamp
(pipelined), up to `scan_limit` entries per platform; past that it covers only the entries read
and `scan_complete` is false.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from eventfwd.core.connection import text
from eventfwd.core.keys import Keys
from eventfwd.core.records import Records
from eventfwd.core.settings import Settings
from worker.heartbeat import BeatTick, read_beat
from worker.retention import retention_key

SCAN_LIMIT = 100_000
MINUTES = 10
_CHUNK = 1000


@dataclass
class PlatformStatus:
    platform_id: str
    backlog: int
    ready: int = 0  # claimable now (held while the circuit is open or the platform paused)
    due: int = 0  # scheduled, time has come: the pump makes it ready (parked while open)
    in_flight: int = 0  # claimed by a worker under a lease
    waiting: int = 0  # scheduled for later: backoff, Retry-After
    cap: float = 0.0  # the in-flight cap in force (adaptive, fleet-wide)
    paused: dict[str, str] = field(default_factory=dict)  # an operator's pause: by, at_ms, reason
    oldest_event_ms: int | None = None
    scan_complete: bool = True
    circuit: dict[str, Any] = field(default_factory=dict)
    rate_per_s: float = 0.0  # the send rate in force now (a 429 lowers it)
    rate_limit_per_s: float = 0.0  # the configured rate
    paused_until_ms: int | None = None
    counters: dict[str, int] = field(default_factory=dict)  # {p}:pstats:{platform}


@dataclass
class FleetStatus:
    now_ms: int
    max_event_age_s: float
    platforms: list[PlatformStatus]
    counters: dict[str, int]
    minutes: list[dict[str, Any]]
    dead: int
    dead_groups: list[dict[str, Any]]
    dead_scan_complete: bool
    queues: dict[str, int]
    beat: BeatTick | None
    retention: dict[str, str]

    @property
    def backlog(self) -> int:
        return sum(p.backlog for p in self.platforms)

    def total(self, name: str) -> int:
        return sum(int(getattr(p, name)) for p in self.platforms)

    def oldest_pending_age_s(self, platform: PlatformStatus | None = None) -> float | None:
        olds = [p.oldest_event_ms for p in ([platform] if platform else self.platforms)]
        known = [o for o in olds if o]
        return max(0.0, (self.now_ms - min(known)) / 1000) if known else None

    def dead_by_reason(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for g in self.dead_groups:
            out[g["reason"]] = out.get(g["reason"], 0) + g["count"]
        return dict(sorted(out.items()))

    def as_dict(self) -> dict[str, Any]:
        """The JSON of `eventfwd stats --json`."""
        platforms = {}
        for p in self.platforms:
            d = asdict(p)
            circuit = d.pop("circuit")
            d.pop("platform_id")
            d["oldest_pending_age_s"] = self.oldest_pending_age_s(p)
            d["circuit"] = circuit.get("state", "closed")
            d["circuit_reason"] = circuit.get("reason") if d["circuit"] == "open" else None
            d["circuit_opened_at"] = _int_or_none(circuit.get("opened_ms"))
            d["circuit_next_probe_at"] = _int_or_none(circuit.get("next_probe_ms"))
            d["circuit_failures"] = int(circuit.get("failures", 0))
            platforms[p.platform_id] = d
        return {
            "now": self.now_ms,
            "backlog": self.backlog,
            "ready": self.total("ready"),
            "due": self.total("due"),
            "in_flight": self.total("in_flight"),
            "waiting": self.total("waiting"),
            "oldest_pending_age_s": self.oldest_pending_age_s(),
            "max_event_age_s": self.max_event_age_s,
            "scan_complete": all(p.scan_complete for p in self.platforms),
            "dead": self.dead,
            "dead_by_reason": self.dead_by_reason(),
            "dead_scan_complete": self.dead_scan_complete,
            "dead_lettered_total": {
                k[5:]: v for k, v in self.counters.items() if k.startswith("dead:")
            },
            "counters": {k: v for k, v in self.counters.items() if not k.startswith("dead:")},
            "per_minute": self.minutes,
            "queues": self.queues,
            "beat_last_tick_at": self.beat.last_tick_ms if self.beat else None,
            "platforms": platforms,
        }


def snapshot(
    client: redis.Redis, settings: Settings, *, scan_limit: int = SCAN_LIMIT
) -> FleetStatus:
    """Read the whole picture; `scan_limit` bounds the per-entry reads (backlog, dead letters)."""
    keys = Keys(settings.key_prefix)
    records = Records(client, keys)
    now_ms = records.now_ms()
    platforms = [
        _platform(client, keys, settings, pid, now_ms, scan_limit) for pid in records.platforms()
    ]
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.stats)
    minute = now_ms // 60_000
    for m in range(minute - MINUTES + 1, minute + 1):
        pipe.hgetall(keys.minute(m))
    pipe.llen(settings.queue)
    pipe.llen(f"{settings.queue}.control")
    pipe.hgetall(retention_key(keys))
    results = pipe.execute()
    counters = _ints(results[0])
    minutes = [
        {"minute": m, "at": m * 60_000, **_ints(results[1 + i])}
        for i, m in enumerate(range(minute - MINUTES + 1, minute + 1))
    ]
    queue_len, control_len, retention = results[-3], results[-2], results[-1]
    summary = records.dead_summary(limit=scan_limit)
    return FleetStatus(
        now_ms=now_ms,
        max_event_age_s=settings.max_event_age_s,
        platforms=platforms,
        counters=counters,
        minutes=minutes,
        dead=records.dead_count(),
        dead_groups=summary.groups,
        dead_scan_complete=summary.complete,
        queues={settings.queue: int(queue_len), f"{settings.queue}.control": int(control_len)},
        beat=read_beat(client, keys),
        retention={text(k): text(v) for k, v in retention.items()},
    )


def _platform(
    client: redis.Redis, keys: Keys, settings: Settings, pid: str, now_ms: int, scan_limit: int
) -> PlatformStatus:
    sets = (keys.ready(pid), keys.sched(pid), keys.inflight(pid))
    pipe = client.pipeline(transaction=False)
    for name in sets:
        pipe.zcard(name)
    pipe.zcount(keys.sched(pid), "-inf", now_ms)
    pipe.hgetall(keys.circuit(pid))
    pipe.hmget(keys.rate(pid), ["rate", "rate_ms", "paused_until_ms"])
    pipe.hgetall(keys.platform_stats(pid))
    pipe.hget(keys.conc(pid), "cap")
    pipe.hgetall(keys.pause(pid))
    ready, scheduled, in_flight, due, circuit, rate, counters, cap, paused = pipe.execute()
    status = PlatformStatus(
        platform_id=pid,
        backlog=int(ready) + int(scheduled) + int(in_flight),
        ready=int(ready),
        due=int(due),
        in_flight=int(in_flight),
        waiting=int(scheduled) - int(due),
        cap=float(text(cap)) if cap else float(settings.concurrency_initial),
        paused={text(k): text(v) for k, v in paused.items()},
        counters=_ints(counters),
    )
    status.circuit = {text(k): text(v) for k, v in circuit.items()}
    cfg = settings.platform(pid).rate_limit_per_s
    status.rate_limit_per_s = cfg
    status.rate_per_s = _rate_in_force(cfg, rate, now_ms)
    paused_until = _int_or_none(text(rate[2]) if rate[2] else None)
    status.paused_until_ms = paused_until if paused_until and paused_until > now_ms else None
    # the first `scan_limit` members across the three sets, in one round trip (their sizes known)
    pipe = client.pipeline(transaction=False)
    left = scan_limit
    for name, size in zip(sets, (int(ready), int(scheduled), int(in_flight)), strict=True):
        if left > 0 and size > 0:
            pipe.zrange(name, 0, left - 1)
            left -= min(size, left)
    members: list[Any] = [m for page in pipe.execute() for m in page][:scan_limit]
    status.scan_complete = len(members) >= status.backlog
    for start in range(0, len(members), _CHUNK):
        pipe = client.pipeline(transaction=False)
        for member in members[start : start + _CHUNK]:
            pipe.hget(keys.event(text(member)), "event_ms")
        for event_ms in pipe.execute():
            if event_ms:
                ms = int(float(text(event_ms)))
                if status.oldest_event_ms is None or ms < status.oldest_event_ms:
                    status.oldest_event_ms = ms
    return status


def _rate_in_force(cfg: float, rate: list[Any], now_ms: int) -> float:
    """The platform's send rate now: rate.lua's additive recovery towards `cfg`, applied."""
    if not rate[0]:
        return cfg
    current = float(text(rate[0]))
    if current >= cfg:  # the workers may be configured with a higher rate than this process
        return current
    since_ms = float(text(rate[1])) if rate[1] else float(now_ms)
    return min(cfg, current + cfg / 60 * max(0.0, now_ms - since_ms) / 1000)


def _ints(h: dict[Any, Any]) -> dict[str, int]:
    return {text(k): int(v) for k, v in sorted(h.items())}


def _int_or_none(value: str | None) -> int | None:
    return int(float(value)) if value else None
