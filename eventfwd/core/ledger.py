"""The ledger: every state change of an event, each one atomic Lua script (see `core/lua/`).

The scripts are loaded once per client (redis-py's `Script` re-sends a script Redis forgot, for
example after a restart) and each method here checks the answer it gets.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import redis

from eventfwd.core import task_names
from eventfwd.core.connection import text
from eventfwd.core.errors import LedgerError
from eventfwd.core.keys import Keys
from eventfwd.core.settings import Settings
from eventfwd.core.vocabulary import Action, Lane, RescheduleKind

# Enqueue outcomes, one per event.
ACCEPTED, DUPLICATE, ALREADY_DELIVERED = 1, 0, 2

# Ids one pump run takes per platform from each of its sets; the claim's rate and in-flight
# checks pace what is sent, so this only bounds one script's run time.
PUMP_LIMIT_PER_PLATFORM = 5_000
# A delivery engine counts as alive this long after its last claim (it claims at least once a
# second, idle or not).
ENGINE_TTL_MS = 10_000
# A Celery wake-up counts as pending this long: at most one is published per interval when no
# delivery engine is alive.
WAKE_MS = 10_000


# Events per `enqueue.lua` call: a larger batch is split, so that one call blocks Redis for
# milliseconds (100,000 events in one call blocked it for 1.45 s).
ENQUEUE_ROWS_PER_CALL = 500


# Lua modules, in the order they are prepended: helpers, the Celery message contract, then one
# module per policy (circuit, rate, in-flight cap) that the scripts call.
SHARED_LUA = (
    "_lib.lua",
    "celery_message.lua",
    "circuit.lua",
    "rate.lua",
    "concurrency.lua",
    "latency.lua",
)
# What each script needs beyond `_lib.lua` (the rest: all of them). Every call runs the whole
# chunk, defining each function it holds, so a one-event enqueue pays for every module it carries.
SCRIPT_MODULES = {
    "enqueue": ("celery_message.lua", "circuit.lua"),
    "pump": ("celery_message.lua", "circuit.lua"),
    "dead": ("circuit.lua", "latency.lua"),
    "replay": ("circuit.lua",),
    "circuit_reset": ("circuit.lua",),
    "ack": ("circuit.lua", "concurrency.lua", "latency.lua"),
    "pause": (),
    "resume": (),
    "purge": (),
    "import": (),
    "lock_take": (),
    "lock_release": (),
}


@cache
def script_source(name: str) -> str:
    """The full text of one ledger script: `_lib.lua`, the modules it needs, then its own."""
    folder = resources.files("eventfwd.core") / "lua"
    needed = SCRIPT_MODULES.get(name, SHARED_LUA[1:])
    parts = [m for m in SHARED_LUA if m == "_lib.lua" or m in needed] + [f"{name}.lua"]
    return "\n".join((folder / part).read_text() for part in parts)


class ArgSpec:
    """The named ARGV of one script, in order (the script's header lists the same names)."""

    def __init__(self, script: str, *names: str) -> None:
        self.script = script
        self.names = names

    def argv(self, values: dict[str, Any], tail: Sequence[Any] = ()) -> list[Any]:
        """ARGV for `values` (every name, nothing else) followed by the repeated `tail`."""
        if values.keys() != set(self.names):
            missing = set(self.names) - values.keys()
            extra = values.keys() - set(self.names)
            raise LedgerError(f"{self.script}: missing {sorted(missing)}, unknown {sorted(extra)}")
        return [values[name] for name in self.names] + list(tail)


_CONC = ("conc_initial", "conc_min", "conc_max")
EnqueueArgs = ArgSpec("enqueue", "prefix", "queue", "task", "wake_ms", "lane")
ClaimArgs = ArgSpec(
    "claim",
    "prefix",
    "engine",
    "token",
    "lease_ms",
    "max",
    "default_rate",
    "rate_overrides",
    *_CONC,
    "engine_ttl_ms",
    "idle_ms",
)
AckArgs = ArgSpec("ack", "prefix", "ttl_ms", *_CONC)
RescheduleArgs = ArgSpec(
    "reschedule",
    "prefix",
    "id",
    "token",
    "kind",
    "delay_ms",
    "max_attempts",
    "threshold",
    "probe_ms",
    "reason",
    "status",
    "message",
    "record",
    "rate",
    "pause_ms",
    *_CONC,
    "rtt_ms",
)
DeadArgs = ArgSpec(
    "dead",
    "prefix",
    "id",
    "token",
    "reason",
    "status",
    "message",
    "record",
    "count",
    "answered",
    "rtt_ms",
)
PumpArgs = ArgSpec("pump", "prefix", "queue", "task", "limit", "poison", "probe_ms", "wake_ms")
ReplayArgs = ArgSpec("replay", "prefix", "max_replays", "reasons", "skip_open")
PauseArgs = ArgSpec("pause", "prefix", "platform", "by", "reason")
ResumeArgs = ArgSpec("resume", "prefix", "platform", "by")
CircuitResetArgs = ArgSpec("circuit_reset", "prefix", "platform")
SPECS = (
    EnqueueArgs,
    ClaimArgs,
    AckArgs,
    RescheduleArgs,
    DeadArgs,
    PumpArgs,
    ReplayArgs,
    PauseArgs,
    ResumeArgs,
    CircuitResetArgs,
)


@dataclass(frozen=True, slots=True)
class Claim:
    """One event a claim handed out, under the lease held by `token`."""

    event_id: str
    token: str
    body: str
    platform_id: str
    attempts: int = 0
    enqueued_ms: int = 0
    event_ms: int = 0
    replays: int = 0
    probe: bool = False


@dataclass(frozen=True, slots=True)
class Wave:
    """What one claim answered: the events, how long nothing may be claimable, and whether
    claimable events were left because the wave was full."""

    claims: list[Claim]
    wait_ms: int
    more: bool


@dataclass(frozen=True, slots=True)
class Delivery:
    """A 2xx to record: the event, the lease it was sent under, and how it went."""

    event_id: str
    token: str
    rtt_ms: int
    status: int


@dataclass(frozen=True, slots=True)
class PumpResult:
    published: int = 0  # events made ready (due retries, released parked events)
    reaped: int = 0
    poisoned: int = 0
    probes: int = 0
    poisoned_ids: tuple[tuple[str, str], ...] = ()  # (event id, platform id)


def enqueue_argv(
    settings: Settings, events: Sequence[tuple[str, str, str, int]], *, lane: Lane = Lane.LIVE
) -> list[Any]:
    """ARGV of `enqueue.lua` for (id, platform, body, event_ms) rows (shared with asyncio)."""
    values = {
        "prefix": settings.key_prefix,
        "queue": settings.queue,
        "task": task_names.DELIVER,
        "wake_ms": WAKE_MS,
        "lane": lane,
    }
    return EnqueueArgs.argv(values, [value for row in events for value in row])


def check_enqueue(result: Any, events: Sequence[Any]) -> list[int]:
    """Check `enqueue.lua`'s answer: one outcome per event."""
    if len(result) != len(events):
        raise LedgerError(f"enqueue answered {len(result)} results for {len(events)} events")
    return [int(r) for r in result]


def _claims(flat: Sequence[Any], token: str) -> list[Claim]:
    """`claim.lua`'s events: 8 values each."""
    if len(flat) % 8:
        raise LedgerError(f"claim answered {len(flat)} values, not a multiple of 8")
    return [
        Claim(
            event_id=text(flat[i]),
            token=token,
            body=text(flat[i + 1]),
            platform_id=text(flat[i + 2]),
            attempts=int(flat[i + 3]),
            enqueued_ms=int(flat[i + 4]),
            event_ms=int(flat[i + 5]),
            replays=int(flat[i + 6]),
            probe=bool(int(flat[i + 7])),
        )
        for i in range(0, len(flat), 8)
    ]


class Ledger:
    """Atomic transitions of the event state machine (DESIGN.md §3)."""

    def __init__(
        self, client: redis.Redis, settings: Settings, *, retry_budget_s: float = 0.0
    ) -> None:
        """`retry_budget_s`: how long to keep retrying a script through connection errors.

        Every script but claim is safe to repeat when its answer was lost: enqueue ignores ids
        it holds, ack is idempotent, and the compare-and-set scripts answer 'lost' the second
        time. A repeated claim would hand out a second wave while the first, whose answer was
        lost, waits for its leases; so a claim is never retried here (the engine claims again).
        """
        self.client = client
        self._retry_budget_s = retry_budget_s
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self._p = settings.key_prefix
        self._lease_ms = int(settings.lease_s * 1000)
        self._rates = ",".join(
            f"{key}={o.rate_limit_per_s}"
            for key, o in settings.platforms.items()
            if o.rate_limit_per_s is not None
        )
        self._scripts = {
            name: client.register_script(script_source(name))
            for name in (*(spec.script for spec in SPECS), "purge")
        }

    def _run(self, name: str, args: Sequence[Any], *, retry: bool = True) -> Any:
        deadline = time.monotonic() + (self._retry_budget_s if retry else 0.0)
        pause_s = 0.05
        while True:
            try:
                return self._scripts[name](keys=[], args=list(args))
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                if time.monotonic() + pause_s > deadline:
                    raise
                time.sleep(pause_s)
                pause_s = min(pause_s * 2, 0.5)

    # -- producer side ---------------------------------------------------------------------

    def enqueue(
        self, events: Sequence[tuple[str, str, str, int]], *, lane: Lane = Lane.LIVE
    ) -> list[int]:
        """Store (id, platform, body, event_ms) tuples, ready in `lane`.

        One round trip per `ENQUEUE_ROWS_PER_CALL` events, so no call blocks Redis for long.
        """
        outcomes: list[int] = []
        for start in range(0, len(events), ENQUEUE_ROWS_PER_CALL):
            chunk = events[start : start + ENQUEUE_ROWS_PER_CALL]
            outcomes += check_enqueue(
                self._run("enqueue", enqueue_argv(self.settings, chunk, lane=lane)), chunk
            )
        return outcomes

    # -- worker side -----------------------------------------------------------------------

    @property
    def _conc(self) -> dict[str, int]:
        s = self.settings
        return {
            "conc_initial": s.concurrency_initial,
            "conc_min": s.concurrency_min,
            "conc_max": s.concurrency_max,
        }

    def claim(self, engine_id: str, token: str, max_events: int, *, idle_ms: int = 1000) -> Wave:
        """Take up to `max_events` ready events, chosen by the scheduler's policy (claim.lua)."""
        s = self.settings
        values = {
            "prefix": self._p,
            "engine": engine_id,
            "token": token,
            "lease_ms": self._lease_ms,
            "max": max(0, min(max_events, s.batch_size)),
            "default_rate": s.rate_limit_per_s,
            "rate_overrides": self._rates,
            **self._conc,
            "engine_ttl_ms": ENGINE_TTL_MS,
            "idle_ms": idle_ms,
        }
        flat, wait_ms, more = self._run("claim", ClaimArgs.argv(values), retry=False)
        return Wave(_claims(flat, token), int(wait_ms), bool(int(more)))

    def ack(self, deliveries: Sequence[Delivery]) -> tuple[list[int], list[str]]:
        """Record deliveries in one round trip: (held per delivery: 1 our lease, 0 another's,
        -1 already gone; platforms whose circuit these deliveries closed)."""
        if not deliveries:
            return [], []
        values = {"prefix": self._p, "ttl_ms": int(self.settings.delivered_ttl_s * 1000)}
        tail = [v for d in deliveries for v in (d.event_id, d.token, d.rtt_ms, d.status)]
        held, closed = self._run("ack", AckArgs.argv({**values, **self._conc}, tail))
        if len(held) != len(deliveries):
            raise LedgerError(f"ack answered {len(held)} results for {len(deliveries)} ids")
        return [int(h) for h in held], [text(c) for c in closed]

    def reschedule(
        self,
        event_id: str,
        token: str,
        *,
        kind: RescheduleKind,
        delay_s: float,
        status: str,
        message: str,
        record: dict[str, Any],
        reason: str = "",
        rate_per_s: float = 0.0,
        pause_s: float = 0.0,
        rtt_ms: int | None = None,
    ) -> tuple[Action, bool]:
        """Put a claimed event back for later: returns (action, circuit opened)."""
        s = self.settings
        values = {
            "prefix": self._p,
            "id": event_id,
            "token": token,
            "kind": kind,
            "delay_ms": int(delay_s * 1000),
            "max_attempts": s.max_attempts,
            "threshold": s.circuit_failure_threshold,
            "probe_ms": int(s.circuit_probe_s * 1000),
            "reason": reason,
            "status": status,
            "message": message,
            "record": json.dumps(record, separators=(",", ":")),
            "rate": rate_per_s,
            "pause_ms": int(pause_s * 1000),
            **self._conc,
            "rtt_ms": -1 if rtt_ms is None else rtt_ms,
        }
        action, opened = self._run("reschedule", RescheduleArgs.argv(values))
        try:
            return Action(text(action)), bool(int(opened))
        except ValueError:
            raise LedgerError(f"reschedule answered {text(action)!r}") from None

    def dead(
        self,
        event_id: str,
        token: str,
        *,
        reason: str,
        status: str,
        message: str,
        record: dict[str, Any] | None,
        count_attempt: bool,
        answered: bool,
        rtt_ms: int | None = None,
    ) -> bool:
        """Move a claimed event to the dead letters; False when the lease was not ours."""
        values = {
            "prefix": self._p,
            "id": event_id,
            "token": token,
            "reason": reason,
            "status": status,
            "message": message,
            "record": json.dumps(record, separators=(",", ":")) if record else "",
            "count": int(count_attempt),
            "answered": int(answered),
            "rtt_ms": -1 if rtt_ms is None else rtt_ms,
        }
        return bool(int(self._run("dead", DeadArgs.argv(values))))

    # -- periodic and operator side --------------------------------------------------------

    def pump(self) -> PumpResult:
        """Make due events ready, recover expired leases, release probes (pump.lua)."""
        s = self.settings
        values = {
            "prefix": self._p,
            "queue": s.queue,
            "task": task_names.DELIVER,
            "limit": PUMP_LIMIT_PER_PLATFORM,
            "poison": s.poison_threshold,
            "probe_ms": int(s.circuit_probe_s * 1000),
            "wake_ms": WAKE_MS,
        }
        moved, reaped, poisoned, probes, _more, poison = self._run("pump", PumpArgs.argv(values))
        pairs = tuple((text(poison[i]), text(poison[i + 1])) for i in range(0, len(poison), 2))
        return PumpResult(int(moved), int(reaped), int(poisoned), int(probes), pairs)

    def pause_platform(self, platform_id: str, *, by: str, reason: str = "") -> bool:
        """Hold a platform: events are kept, none is sent. True when it was not paused."""
        values = {"prefix": self._p, "platform": platform_id, "by": by, "reason": reason}
        return bool(int(self._run("pause", PauseArgs.argv(values))))

    def resume_platform(self, platform_id: str, *, by: str) -> bool:
        """Release a paused platform (drains at its rate). True when it was paused."""
        values = {"prefix": self._p, "platform": platform_id, "by": by}
        return bool(int(self._run("resume", ResumeArgs.argv(values))))

    def reset_circuit(self, platform_id: str) -> bool:
        """Close a platform's circuit by hand, as a delivered probe would. True when it was open."""
        values = {"prefix": self._p, "platform": platform_id}
        return bool(int(self._run("circuit_reset", CircuitResetArgs.argv(values))))

    def replay(
        self,
        event_ids: Sequence[str],
        *,
        max_replays: int = 0,
        reasons: Sequence[str] = (),
        skip_open_circuits: bool = False,
    ) -> tuple[int, int]:
        """Schedule dead letters again: returns (replayed, skipped)."""
        if not event_ids:
            return 0, 0
        values = {
            "prefix": self._p,
            "max_replays": max_replays,
            "reasons": ",".join(reasons) if reasons else "*",
            "skip_open": int(skip_open_circuits),
        }
        replayed, skipped = self._run("replay", ReplayArgs.argv(values, event_ids))
        return int(replayed), int(skipped)

    def purge(self, event_ids: Sequence[str]) -> int:
        """Delete dead letters; returns how many were deleted."""
        if not event_ids:
            return 0
        return int(self._run("purge", [self._p, *event_ids]))
