"""`eventfwd doctor`: check everything the fleet depends on and say what is wrong.

Checks, in order: settings, Redis (reachable, persistence, memory), clock skew against Redis's
clock (the fleet's), Moloco's base URLs (reachable; skew against their Date header), Celery
workers (ping, which queues they take), beat (its last pump tick, and which beat holds the lock
that keeps any other one standing by), the backlog, the circuits, per-platform overrides without
an allow-list (which platform id owns each) and dead-letter retention.
Each is `ok`, `warn`, `FAIL` or `skip`; exit status 1 when any failed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import click
import redis
from celery import Celery

from eventfwd.cli.base import EXIT_PROBLEM, Context, handle_errors, pass_context
from eventfwd.cli.format import span
from eventfwd.core import task_names as tasks
from eventfwd.core.connection import redact_url
from eventfwd.core.errors import ConfigError
from eventfwd.core.keys import Keys
from eventfwd.core.ledger import ENGINE_TTL_MS
from eventfwd.core.lock import read_holder
from eventfwd.core.overrides import OverrideOwners
from eventfwd.core.records import Records
from eventfwd.core.settings import Settings, platform_env_key
from eventfwd.ops.platforms import pauses_of
from eventfwd.ops.snapshot import snapshot
from worker.beat import beat_lock_key
from worker.heartbeat import read_beat
from worker.http_client import HttpClient
from worker.persistence import persistence_problems

CLOCK_WARN_S, CLOCK_FAIL_S = 1.0, 30.0
# Read timeout of the probe; the connect timeout is the worker's (worker/http_client.py).
HTTP_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # ok | warn | fail | skip
    detail: str


class Doctor:
    """Runs the checks; Redis-bound ones are skipped once Redis is found unreachable."""

    def __init__(self, settings: Settings, client: redis.Redis, celery_timeout_s: float) -> None:
        self.settings = settings
        self.client = client
        self.timeout_s = celery_timeout_s
        self.redis_ok = False
        self.workers: list[str] = []
        self._app: Celery | None = None

    def run(self) -> Iterator[Check]:
        checks: list[Callable[[], Iterator[Check]]] = [
            self.check_settings,
            self.check_redis,
            self.check_moloco,
            self.check_workers,
            self.check_beat,
            self.check_backlog,
            self.check_overrides,
            self.check_retention,
        ]
        for check in checks:
            yield from check()

    def check_settings(self) -> Iterator[Check]:
        s = self.settings
        try:
            s.require_delivery_config()
        except ConfigError as exc:
            yield Check("settings", "fail", str(exc))
            return
        overrides = len(s.platforms)
        yield Check(
            "settings",
            "ok",
            f"Redis {redact_url(s.redis_url)}, Moloco {s.moloco_base_url or '(per platform)'}, "
            f"API key set, {overrides} platform override(s), key prefix {s.key_prefix}",
        )

    def check_redis(self) -> Iterator[Check]:
        url = redact_url(self.settings.redis_url)
        try:
            started = time.monotonic()
            self.client.ping()
            rtt_ms = (time.monotonic() - started) * 1000
            info: dict[str, Any] = self.client.info()
        except redis.RedisError as exc:
            yield Check("redis", "fail", f"{url} is unreachable ({exc})")
            return
        self.redis_ok = True
        yield Check(
            "redis", "ok", f"{url} answered in {rtt_ms:.1f} ms (Redis {info.get('redis_version')})"
        )
        problems = persistence_problems(self.client)
        if problems:
            yield Check("persistence", "fail", "; ".join(problems))
        else:
            yield Check("persistence", "ok", "appendonly yes, maxmemory-policy noeviction")
        used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
        if limit and used > 0.8 * limit:
            yield Check(
                "memory",
                "warn",
                f"{used / limit:.0%} of maxmemory used: when full, Redis refuses new events",
            )
        yield from self._clock()

    def _clock(self) -> Iterator[Check]:
        before = time.time()
        seconds, micros = self.client.time()
        after = time.time()
        skew_s = seconds + micros / 1e6 - (before + after) / 2
        status = "ok"
        if abs(skew_s) > CLOCK_FAIL_S:
            status = "fail"
        elif abs(skew_s) > CLOCK_WARN_S:
            status = "warn"
        side = "behind" if skew_s > 0 else "ahead of"
        yield Check(
            "clock",
            status,
            f"this machine's clock is {abs(skew_s) * 1000:.0f} ms {side} Redis's (the fleet's)",
        )

    def check_moloco(self) -> Iterator[Check]:
        s = self.settings
        urls = {u for u in [s.moloco_base_url, *(o.base_url for o in s.platforms.values())] if u}
        if not urls:
            yield Check("moloco", "skip", "no base URL configured")
            return
        # through the worker's own client: the same CA bundle, proxy and timeouts as deliveries
        client = HttpClient(timeout_s=HTTP_TIMEOUT_S, pool_size=1)
        try:
            yield from self._probe_moloco(client, sorted(urls))
        finally:
            client.close()

    def _probe_moloco(self, client: HttpClient, urls: list[str]) -> Iterator[Check]:
        for url in urls:
            answer, date = client.probe(url + "/")
            if answer.status is None:
                yield Check("moloco", "fail", f"{url} is unreachable ({answer.message})")
                continue
            yield Check(
                "moloco",
                "ok",
                f"{url} answered HTTP {answer.status} in {answer.duration_ms} ms",
            )
            skew = _date_skew_s(date)
            if skew is not None and abs(skew) > 5:
                yield Check(
                    "clock", "warn", f"this machine's clock is {skew:+.0f} s off {url}'s Date"
                )

    def check_workers(self) -> Iterator[Check]:
        if not self.redis_ok:
            yield Check("workers", "skip", "needs Redis (the Celery broker)")
            return
        from worker.app import create_app

        app = self._app = create_app(self.settings)
        try:
            replies = app.control.ping(timeout=self.timeout_s) or []
        except (redis.RedisError, OSError) as exc:  # kombu's broker connection, not our client
            self._app = None
            yield Check(
                "workers",
                "fail",
                f"could not ask the workers through the broker ({type(exc).__name__}); "
                "the other checks read Redis directly",
            )
            return
        self.workers = sorted(name for reply in replies for name in reply)
        if not self.workers:
            yield Check(
                "workers",
                "fail",
                f"no worker answered Celery's ping within {self.timeout_s:g}s "
                "(start some: eventfwd worker)",
            )
            return
        yield Check(
            "workers", "ok", f"{len(self.workers)} answered ping: {', '.join(self.workers)}"
        )
        inspect = app.control.inspect(timeout=self.timeout_s, limit=len(self.workers))
        taken: dict[str, int] = {}
        for queues in (inspect.active_queues() or {}).values():
            for q in queues:
                taken[q["name"]] = taken.get(q["name"], 0) + 1
        needed = [self.settings.queue, f"{self.settings.queue}.control"]
        missing = [q for q in needed if not taken.get(q)]
        if missing:
            yield Check(
                "queues",
                "fail",
                f"no worker takes {', '.join(missing)} (with -Q, name both queues)",
            )
        else:
            yield Check("queues", "ok", ", ".join(f"{q} taken by {taken[q]}" for q in needed))

    def check_beat(self) -> Iterator[Check]:
        if not self.redis_ok:
            yield Check("beat", "skip", "needs Redis")
            return
        yield self._beat_tick()
        yield self._beat_lock()

    def _beat_tick(self) -> Check:
        stale_s = max(10.0, 10 * self.settings.pump_interval_s)
        tick = read_beat(self.client, Keys(self.settings.key_prefix))
        if tick is not None:
            age_s = time.time() - tick.last_tick_ms / 1000
            status = "ok" if age_s < stale_s else "fail"
            return Check(
                "beat",
                status,
                f"last pump tick {span(age_s)} ago (on {tick.host}, pid {tick.pid})"
                + ("" if status == "ok" else ": is `eventfwd beat` running?"),
            )
        if not self.workers:
            return Check("beat", "skip", "no tick recorded, and no worker to ask")
        return self._beat_from_celery()

    def _beat_lock(self) -> Check:
        """Which beat holds the lock (worker/beat.py); any other one is a standby."""
        key = beat_lock_key(self.settings)
        holder = read_holder(self.client, key)
        if holder is None:
            return Check(
                "beat-lock",
                "warn",
                f"no beat holds {key}: none is running, or one older than this eventfwd",
            )
        seconds, micros = self.client.time()
        held_s = seconds + micros / 1e6 - holder.since_ms / 1000
        return Check(
            "beat-lock",
            "ok",
            f"held by {holder.host} (pid {holder.pid}) for {span(held_s)}; "
            "any other beat waits as a standby",
        )

    def _beat_from_celery(self) -> Check:
        """No heartbeat key: see whether the workers' count of pump runs goes up."""
        assert self._app is not None
        inspect = self._app.control.inspect(timeout=self.timeout_s, limit=len(self.workers))

        def pumps() -> int:
            stats = inspect.stats() or {}
            return sum(int(s.get("total", {}).get(tasks.PUMP, 0)) for s in stats.values())

        wait_s = max(1.5, 2.5 * self.settings.pump_interval_s)
        first = pumps()
        time.sleep(wait_s)
        ran = pumps() - first
        if ran > 0:
            return Check("beat", "ok", f"the pump ran {ran} time(s) in {wait_s:g}s")
        return Check(
            "beat", "fail", f"the pump did not run in {wait_s:g}s: is `eventfwd beat` running?"
        )

    def check_backlog(self) -> Iterator[Check]:
        if not self.redis_ok:
            return
        snap = snapshot(self.client, self.settings, scan_limit=10_000)
        age = snap.oldest_pending_age_s()
        detail = f"{snap.backlog} pending, oldest {span(age) if age is not None else '-'}"
        status = "ok"
        if age is not None and age > 0.5 * snap.max_event_age_s:
            status = "warn"
            detail += f" (events expire at {span(snap.max_event_age_s)})"
        yield Check("backlog", status, detail + f"; {snap.dead} dead letter(s)")
        keys = Keys(self.settings.key_prefix)
        engines = int(self.client.zcount(keys.engines, f"({snap.now_ms}", "+inf"))
        ready = snap.total("ready")
        if engines:
            yield Check("engines", "ok", f"{engines} delivery engine(s) claiming; {ready} ready")
        else:
            yield Check(
                "engines",
                "fail" if ready else "warn",
                f"no delivery engine has claimed in the last {ENGINE_TTL_MS // 1000}s"
                + (f" and {ready} event(s) are ready: is a worker running?" if ready else ""),
            )
        pauses = pauses_of(snap.platforms)
        for pid, pause in sorted(pauses.items()):
            since = span((snap.now_ms - pause.at_ms) / 1000)
            why = f": {pause.reason}" if pause.reason else ""
            yield Check(
                "paused",
                "warn",
                f"{pid} was paused by {pause.by} {since} ago{why}; nothing is sent to it "
                f"(eventfwd platform resume {pid})",
            )
        for p in snap.platforms:
            if p.circuit.get("state") == "open":
                yield Check(
                    "circuit",
                    "warn",
                    f"{p.platform_id} is open ({p.circuit.get('reason')}: "
                    f"{p.circuit.get('last_message') or 'no message'})",
                )

    def check_overrides(self) -> Iterator[Check]:
        """Per-platform overrides without an allow-list: which id owns each, who was refused."""
        s = self.settings
        if not s.platforms or s.allowed_platforms is not None or not self.redis_ok:
            return
        keys = Keys(s.key_prefix)
        pinned = OverrideOwners(self.client, keys, s).pinned()
        known = Records(self.client, keys).platforms()
        refused = [pid for pid in known if pinned.get(platform_env_key(pid), pid) != pid]
        owners = ", ".join(f"EVENTFWD_PLATFORM_{k}_* -> {v}" for k, v in pinned.items())
        detail = (
            f"{len(s.platforms)} per-platform override(s) and no EVENTFWD_ALLOWED_PLATFORMS: "
            f"each goes to the first platform id that used it ({owners or 'none used yet'})"
        )
        if refused:
            detail += f"; look-alike ids refused as not_allowed dead letters: {', '.join(refused)}"
        yield Check("overrides", "warn", detail + "; set EVENTFWD_ALLOWED_PLATFORMS")

    def check_retention(self) -> Iterator[Check]:
        directory = self.settings.dead_letter_export_dir
        if not directory:
            yield Check(
                "retention",
                "warn",
                "EVENTFWD_DEAD_LETTER_EXPORT_DIR is unset: dead letters past the retention "
                "limits are trimmed without a copy",
            )
            return
        path = Path(directory)
        probe = path / ".eventfwd-doctor"
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            yield Check("retention", "fail", f"cannot write to {path} ({exc}): trimming stops")
            return
        yield Check("retention", "ok", f"dead letters are exported to {path} before trimming")


def _date_skew_s(header: str | None) -> float | None:
    if not header:
        return None
    try:
        return time.time() - parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return None


LABEL = {"ok": "ok", "warn": "warn", "fail": "FAIL", "skip": "skip"}


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per check.")
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds to wait for Celery's answers.",
)
@pass_context
@handle_errors
def doctor(ctx: Context, as_json: bool, timeout_s: float) -> None:
    """Check settings, Redis, clocks, Moloco, workers and beat; exit 1 when anything failed."""
    failed = warned = 0
    for check in Doctor(ctx.settings, ctx.client, timeout_s).run():
        failed += check.status == "fail"
        warned += check.status == "warn"
        if as_json:
            click.echo(json.dumps(asdict(check)))
        else:
            click.echo(f"{LABEL[check.status]:5} {check.name:12} {check.detail}")
    if not as_json:
        click.echo(f"{failed} problem(s), {warned} warning(s)")
    if failed:
        raise SystemExit(EXIT_PROBLEM)
