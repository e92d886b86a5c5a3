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

from eventfwd.core import task_names as tasks
from eventfwd.core.errors import LedgerError
from eventfwd.core.keys import Keys
from eventfwd.core.settings import Settings

# Enqueue outcomes, one per event.
ACCEPTED, DUPLICATE, ALREADY_DELIVERED = 1, 0, 2

# ids that the pump may republish even with this many messages already waiting in the queue.
QUEUE_HIGH_WATER = 100
# Ids one pump run may release per platform; the platform's rate caps it further (twice its
# share of a pump interval), so this only bounds one script's run time.
PUMP_LIMIT_PER_PLATFORM = 5_000


# Events per `enqueue.lua` call: a larger batch is split, so that one call blocks Redis for
# milliseconds (100,000 events in one call blocked it for 1.45 s).
ENQUEUE_ROWS_PER_CALL = 500


# Lua modules prepended to every script, in order: helpers, then the Celery message contract.
SHARED_LUA = ("_lib.lua", "celery_message.lua")


@cache
def script_source(name: str) -> str:
    """The full text of one ledger script (the shared modules prepended, `_lib.lua` first)."""
    folder = resources.files("eventfwd.core") / "lua"
    parts = [*SHARED_LUA, f"{name}.lua"]
    return "\n".join((folder / part).read_text() for part in parts)


@dataclass(frozen=True, slots=True)
class Claim:
    """What `claim` answered: `status` is 'ok' or why the event was not handed out."""

    status: str
    body: str = ""
    platform_id: str = ""
    attempts: int = 0
    enqueued_ms: int = 0
    event_ms: int = 0
    replays: int = 0
    probe: bool = False
    due_ms: int | None = None


@dataclass(frozen=True, slots=True)
class PumpResult:
    published: int = 0
    reaped: int = 0
    poisoned: int = 0
    probes: int = 0
    poisoned_ids: tuple[tuple[str, str], ...] = ()  # (event id, platform id)


def enqueue_argv(settings: Settings, events: Sequence[tuple[str, str, str, int]]) -> list[Any]:
    """ARGV of `enqueue.lua` for (id, platform, body, event_ms) rows (shared with asyncio)."""
    args: list[Any] = [settings.key_prefix, settings.queue, tasks.DELIVER]
    args += [int(settings.lease_s * 1000), settings.batch_size]
    for row in events:
        args.extend(row)
    return args


def check_enqueue(result: Any, events: Sequence[Any]) -> list[int]:
    """Check `enqueue.lua`'s answer: one outcome per event."""
    if len(result) != len(events):
        raise LedgerError(f"enqueue answered {len(result)} results for {len(events)} events")
    return [int(r) for r in result]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _claim(r: Sequence[Any]) -> Claim:
    """One id's answer from `claim.lua`."""
    status = _text(r[0])
    if status == "ok":
        return Claim(
            status=status,
            body=_text(r[1]),
            platform_id=_text(r[2]),
            attempts=int(r[3]),
            enqueued_ms=int(r[4]),
            event_ms=int(r[5]),
            replays=int(r[6]),
            probe=bool(int(r[7])),
        )
    if status in ("notdue", "throttled"):
        return Claim(status=status, due_ms=int(float(r[1])))
    if status in ("gone", "delivered", "dead", "busy", "parked"):
        return Claim(status=status)
    raise LedgerError(f"claim answered {status!r}")


class Ledger:
    """Atomic transitions of the event state machine (DESIGN.md §3)."""

    def __init__(
        self, client: redis.Redis, settings: Settings, *, retry_budget_s: float = 0.0
    ) -> None:
        """`retry_budget_s`: how long to keep retrying a script through connection errors.

        Every script is safe to repeat when its answer was lost: enqueue ignores ids it holds,
        ack is idempotent, and the compare-and-set scripts answer 'lost' the second time.
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
            for name in ("enqueue", "claim", "ack", "reschedule", "dead", "pump", "replay", "purge")
        }

    def _run(self, name: str, args: Sequence[Any]) -> Any:
        deadline = time.monotonic() + self._retry_budget_s
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

    def enqueue(self, events: Sequence[tuple[str, str, str, int]]) -> list[int]:
        """Store (id, platform, body, event_ms) tuples and publish their ids.

        One round trip per `ENQUEUE_ROWS_PER_CALL` events, so no call blocks Redis for long.
        """
        outcomes: list[int] = []
        for start in range(0, len(events), ENQUEUE_ROWS_PER_CALL):
            chunk = events[start : start + ENQUEUE_ROWS_PER_CALL]
            outcomes += check_enqueue(
                self._run("enqueue", enqueue_argv(self.settings, chunk)), chunk
            )
        return outcomes

    # -- worker side -----------------------------------------------------------------------

    def claim(self, event_id: str, token: str) -> Claim:
        """Take `event_id` under a lease held by `token`, or learn why not."""
        return self.claim_many([event_id], token)[0]

    def claim_many(self, event_ids: Sequence[str], token: str) -> list[Claim]:
        """Take each of `event_ids` under a lease held by `token`; one round trip, in order."""
        s = self.settings
        answers = self._run(
            "claim",
            [
                self._p,
                token,
                self._lease_ms,
                s.rate_limit_per_s,
                self._rates,
                s.poison_threshold,
                *event_ids,
            ],
        )
        if len(answers) != len(event_ids):
            raise LedgerError(f"claim answered {len(answers)} results for {len(event_ids)} ids")
        return [_claim(r) for r in answers]

    def ack(self, event_id: str, token: str) -> tuple[int, bool]:
        """Record a delivery: returns (held: 1 ours / 0 not ours / -1 gone, circuit closed)."""
        held, closed = self.ack_many([event_id], token)
        return held[0], bool(closed)

    def ack_many(self, event_ids: Sequence[str], token: str) -> tuple[list[int], list[str]]:
        """Record deliveries in one round trip: (held per id, platforms whose circuit closed)."""
        if not event_ids:
            return [], []
        ttl_ms = int(self.settings.delivered_ttl_s * 1000)
        held, closed = self._run("ack", [self._p, token, ttl_ms, *event_ids])
        if len(held) != len(event_ids):
            raise LedgerError(f"ack answered {len(held)} results for {len(event_ids)} ids")
        return [int(h) for h in held], [_text(c) for c in closed]

    def reschedule(
        self,
        event_id: str,
        token: str,
        *,
        kind: str,
        delay_s: float,
        status: str,
        message: str,
        record: dict[str, Any],
        reason: str = "",
        rate_per_s: float = 0.0,
        pause_s: float = 0.0,
    ) -> tuple[str, bool]:
        """Put a claimed event back for later: returns (action, circuit opened).

        `kind` is 'transient', 'throttled' or 'blocked'; action is 'retry', 'parked', 'dead'
        (attempt budget spent) or 'lost' (our lease had expired; nothing changed).
        """
        s = self.settings
        action, opened = self._run(
            "reschedule",
            [
                self._p,
                event_id,
                token,
                kind,
                int(delay_s * 1000),
                s.max_attempts,
                s.circuit_failure_threshold,
                int(s.circuit_probe_s * 1000),
                reason,
                status,
                message,
                json.dumps(record, separators=(",", ":")),
                rate_per_s,
                int(pause_s * 1000),
            ],
        )
        action = _text(action)
        if action not in ("retry", "parked", "dead", "lost"):
            raise LedgerError(f"reschedule answered {action!r}")
        return action, bool(int(opened))

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
    ) -> bool:
        """Move a claimed event to the dead letters; False when the lease was not ours."""
        history = json.dumps(record, separators=(",", ":")) if record else ""
        moved = self._run(
            "dead",
            [
                self._p,
                event_id,
                token,
                reason,
                status,
                message,
                history,
                int(count_attempt),
                int(answered),
            ],
        )
        return bool(int(moved))

    # -- periodic and operator side --------------------------------------------------------

    def pump(self) -> PumpResult:
        """Publish due events and recover lost ones, at most the platform's rate per interval."""
        s = self.settings
        published, reaped, poisoned, probes, _more, poison = self._run(
            "pump",
            [
                self._p,
                s.queue,
                tasks.DELIVER,
                self._lease_ms,
                PUMP_LIMIT_PER_PLATFORM,
                s.batch_size,
                s.poison_threshold,
                QUEUE_HIGH_WATER,
                int(s.circuit_probe_s * 1000),
                s.rate_limit_per_s,
                int(s.pump_interval_s * 1000),
            ],
        )
        pairs = tuple((_text(poison[i]), _text(poison[i + 1])) for i in range(0, len(poison), 2))
        return PumpResult(int(published), int(reaped), int(poisoned), int(probes), pairs)

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
        allowed = ",".join(reasons) if reasons else "*"
        args = [self._p, max_replays, allowed, int(skip_open_circuits), *event_ids]
        replayed, skipped = self._run("replay", args)
        return int(replayed), int(skipped)

    def purge(self, event_ids: Sequence[str]) -> int:
        """Delete dead letters; returns how many were deleted."""
        if not event_ids:
            return 0
        return int(self._run("purge", [self._p, *event_ids]))
