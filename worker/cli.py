"""`eventfwd`: the operator's command line.

Exit codes: 0 success; 1 something was refused or found wrong (invalid events, doctor
problems); 2 usage error; 3 Redis unreachable; 4 unknown id; 78 bad configuration.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import click

from core.errors import ConfigError
from core.records import Envelope, Records
from core.settings import Settings
from worker.cli_base import (
    EXIT_CONFIG,
    EXIT_NOT_FOUND,
    EXIT_PROBLEM,
    Context,
    fail,
    handle_errors,
    pass_context,
)
from worker.dev import dev
from worker.send import send
from worker.sink.command import sink


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--redis-url", envvar="EVENTFWD_REDIS_URL", help="Redis URL [EVENTFWD_REDIS_URL].")
@click.pass_context
def cli(ctx: click.Context, redis_url: str | None) -> None:
    """Forward user events to Moloco Commerce Media, durably. Inspect and repair the fleet."""
    if ctx.invoked_subcommand in ("sink", "dev"):
        return  # self-contained: they configure what they start
    try:
        settings = Settings.from_env()
        if redis_url:
            settings = settings.replace(redis_url=redis_url)
    except ConfigError as exc:
        fail(f"configuration: {exc}", EXIT_CONFIG)
    ctx.obj = Context(settings)


def _celery(args: tuple[str, ...], what: str) -> None:
    os.execvp(sys.executable, [sys.executable, "-m", "celery", "-A", "worker", what, *args])


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """Run a delivery worker (`celery -A worker worker`; extra arguments go to Celery)."""
    _celery(celery_args, "worker")


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat(celery_args: tuple[str, ...]) -> None:
    """Run the scheduler: exactly one per fleet (`celery -A worker beat`)."""
    _celery(celery_args, "beat")


# -- dead letters --------------------------------------------------------------------------


@cli.group()
def dead() -> None:
    """Inspect, replay and purge dead letters."""


def _ago(ms: int | None) -> str:
    if not ms:
        return "-"
    s = max(0, time.time() - ms / 1000)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s / size:.0f}{unit} ago"
    return f"{s:.0f}s ago"


def _table(rows: list[list[str]], headers: list[str]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    for row in [headers, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


def _filtered(
    records: Records, platform: str | None, reason: str | None, limit: int | None
) -> Iterator[Envelope]:
    return records.dead_letters(platform_id=platform, reason=reason, limit=limit)


@dead.command("list")
@click.option("--platform", help="Only this platform.")
@click.option("--reason", help="Only this reason (rejected, retries_exhausted, expired, poison).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_context
@handle_errors
def dead_list(
    ctx: Context, platform: str | None, reason: str | None, limit: int, as_json: bool
) -> None:
    """List dead letters, oldest first."""
    rows = list(_filtered(ctx.records, platform, reason, limit))
    if as_json:
        for env in rows:
            click.echo(json.dumps(env.as_dict(), separators=(",", ":")))
        return
    table = [
        [
            e.id,
            e.platform_id,
            e.reason or "-",
            e.status or "-",
            str(e.attempts),
            _ago(e.dead_ms),
            (e.message or "")[:60],
        ]
        for e in rows
    ]
    _table(table, ["ID", "PLATFORM", "REASON", "STATUS", "ATTEMPTS", "DEAD", "MESSAGE"])
    total = ctx.client.zcard(ctx.ledger.keys.dead)
    click.echo(f"{len(rows)} shown of {total} dead letter(s)")


@dead.command("show")
@click.argument("event_id")
@click.option("--json", "as_json", is_flag=True)
@pass_context
@handle_errors
def dead_show(ctx: Context, event_id: str, as_json: bool) -> None:
    """Show one event's whole record and attempt history."""
    env = ctx.records.get(event_id)
    if env is None:
        fail(
            f"no event {event_id} in the ledger (delivered, purged or never enqueued)",
            EXIT_NOT_FOUND,
        )
        return
    if as_json:
        click.echo(json.dumps(env.as_dict(), indent=2))
        return
    d = env.as_dict()
    for k in ("id", "platform_id", "state", "reason", "status", "message", "attempts", "replays"):
        click.echo(f"{k:12} {d[k]}")
    click.echo(f"{'dead':12} {_ago(env.dead_ms)}")
    click.echo(f"{'enqueued':12} {_ago(env.enqueued_ms)}")
    click.echo("history:")
    for h in env.history:
        click.echo(
            f"  {_ago(h.get('at_ms'))}  {h.get('status') or '-'}  {h.get('outcome')}"
            f"  {h.get('duration_ms', '-')}ms  {h.get('message') or ''}"
        )
    click.echo("event:")
    click.echo(json.dumps(env.event, indent=2))


def _selected_ids(
    ctx: Context, ids: tuple[str, ...], select_all: bool, platform: str | None, reason: str | None
) -> list[str]:
    if ids and (select_all or platform or reason):
        raise click.UsageError("give ids or a selection (--all / --platform / --reason), not both")
    if ids:
        return list(ids)
    if not (select_all or platform or reason):
        raise click.UsageError("give dead-letter ids, or --all / --platform / --reason")
    return [e.id for e in _filtered(ctx.records, platform, reason, None)]


@dead.command("replay")
@click.argument("ids", nargs=-1)
@click.option("--all", "select_all", is_flag=True, help="Every dead letter.")
@click.option("--platform")
@click.option("--reason")
@click.option("--dry-run", is_flag=True, help="Only count what would be replayed.")
@pass_context
@handle_errors
def dead_replay(
    ctx: Context,
    ids: tuple[str, ...],
    select_all: bool,
    platform: str | None,
    reason: str | None,
    dry_run: bool,
) -> None:
    """Send dead letters again (same id, fresh attempts), paced by the platform's rate."""
    chosen = _selected_ids(ctx, ids, select_all, platform, reason)
    if dry_run:
        click.echo(f"would replay {len(chosen)} dead letter(s)")
        return
    replayed = skipped = 0
    for start in range(0, len(chosen), 500):
        r, s = ctx.ledger.replay(chosen[start : start + 500])
        replayed, skipped = replayed + r, skipped + s
    click.echo(f"replayed {replayed} dead letter(s); {skipped} not dead letters (skipped)")
    if ids and skipped:
        sys.exit(EXIT_NOT_FOUND)


@dead.command("purge")
@click.argument("ids", nargs=-1)
@click.option("--all", "select_all", is_flag=True, help="Every dead letter.")
@click.option("--platform")
@click.option("--reason")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_context
@handle_errors
def dead_purge(
    ctx: Context,
    ids: tuple[str, ...],
    select_all: bool,
    platform: str | None,
    reason: str | None,
    yes: bool,
) -> None:
    """Delete dead letters for good."""
    chosen = _selected_ids(ctx, ids, select_all, platform, reason)
    if not yes and not click.confirm(f"delete {len(chosen)} dead letter(s) for good?"):
        click.echo("nothing deleted")
        sys.exit(EXIT_PROBLEM)
    purged = sum(ctx.ledger.purge(chosen[i : i + 500]) for i in range(0, len(chosen), 500))
    click.echo(f"purged {purged} dead letter(s)")
    if ids and purged < len(chosen):
        sys.exit(EXIT_NOT_FOUND)


# -- status ----------------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@pass_context
@handle_errors
def stats(ctx: Context, as_json: bool) -> None:
    """Backlog, dead letters, counters and each platform's circuit and rate."""
    snap = ctx.records.stats()
    dead_now: dict[str, int] = {}
    for env in ctx.records.dead_letters():
        dead_now[env.reason or "?"] = dead_now.get(env.reason or "?", 0) + 1
    snap["dead_by_reason"] = dead_now
    if as_json:
        click.echo(json.dumps(snap, indent=2, sort_keys=True))
        return
    click.echo(f"backlog  {snap['backlog']} event(s) accepted, not yet delivered or dead")
    click.echo(
        f"dead     {snap['dead']} " + " ".join(f"{k}={v}" for k, v in sorted(dead_now.items()))
    )
    click.echo("counters " + " ".join(f"{k}={v}" for k, v in sorted(snap["counters"].items())))
    for pid, p in snap["platforms"].items():
        circuit = p["circuit"] + (f" ({p['circuit_reason']})" if p["circuit_reason"] else "")
        click.echo(
            f"platform {pid}: backlog={p['backlog']} circuit={circuit}"
            f" rate={p['rate_per_s'] or '-'}/s"
        )


@cli.group()
def circuit() -> None:
    """Each platform's circuit breaker."""


@circuit.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_context
@handle_errors
def circuit_status(ctx: Context, as_json: bool) -> None:
    """Show every platform's circuit: state, reason, opened, next probe, failures."""
    rows: list[dict[str, Any]] = []
    for pid in ctx.records.platforms():
        raw: dict[bytes, bytes] = ctx.client.hgetall(ctx.ledger.keys.circuit(pid))  # type: ignore[assignment]
        c = {k.decode(): v.decode() for k, v in raw.items()}
        rows.append(
            {
                "platform_id": pid,
                "state": c.get("state", "closed"),
                "reason": c.get("reason") if c.get("state") == "open" else None,
                "opened_at": int(c["opened_ms"])
                if c.get("state") == "open" and "opened_ms" in c
                else None,
                "next_probe_at": int(c["next_probe_ms"])
                if c.get("state") == "open" and "next_probe_ms" in c
                else None,
                "failures": int(c.get("failures", 0)),
                "last_status": c.get("last_status"),
                "last_message": c.get("last_message"),
            }
        )
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    _table(
        [
            [
                r["platform_id"],
                r["state"],
                r["reason"] or "-",
                _ago(r["opened_at"]),
                str(r["failures"]),
            ]
            for r in rows
        ],
        ["PLATFORM", "STATE", "REASON", "OPENED", "FAILURES"],
    )


@circuit.command("reset")
@click.argument("platform", required=False)
@pass_context
@handle_errors
def circuit_reset(ctx: Context, platform: str | None) -> None:
    """Close a platform's circuit (all when none is named), e.g. after fixing the API key."""
    targets = [platform] if platform else ctx.records.platforms()
    for pid in targets:
        ctx.client.hset(ctx.ledger.keys.circuit(pid), mapping={"state": "closed", "failures": 0})
    click.echo(
        f"closed the circuit of {len(targets)} platform(s); "
        "parked events drain at the platform's rate"
    )


def main() -> None:
    cli(prog_name="eventfwd")


cli.add_command(dev)
cli.add_command(send)
cli.add_command(sink)
