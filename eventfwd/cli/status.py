"""`eventfwd stats` and `eventfwd circuit status|reset`: how the fleet is doing right now."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from eventfwd.cli.base import (
    EXIT_NOT_FOUND,
    Context,
    fail,
    handle_errors,
    operator,
    pass_context,
)
from eventfwd.cli.format import ago, iso, span, table
from eventfwd.core.connection import redact_url, text
from eventfwd.ops import platforms
from eventfwd.ops.platforms import Pause
from eventfwd.ops.snapshot import SCAN_LIMIT, FleetStatus, PlatformStatus, snapshot

MINUTE_FIELDS = ("delivered", "failed", "retried", "throttled", "dead")


def _minute_counts(bucket: dict[str, Any]) -> dict[str, int]:
    out = {f: int(bucket.get(f, 0)) for f in MINUTE_FIELDS if f != "dead"}
    out["dead"] = sum(int(v) for k, v in bucket.items() if k.startswith("dead:"))
    return out


def _circuit(p: PlatformStatus, now_ms: int) -> str:
    c = p.circuit
    if c.get("state") != "open":
        return "closed"
    opened = int(float(c.get("opened_ms") or now_ms))
    shown = f"OPEN ({c.get('reason', '?')}) for {span((now_ms - opened) / 1000)}"
    probe = c.get("next_probe_ms")
    if probe:
        shown += f", probe in {span((int(float(probe)) - now_ms) / 1000)}"
    return shown


def render(snap: FleetStatus, url: str, pauses: dict[str, Pause] | None = None) -> None:
    """Print the snapshot for people (`pauses`: platforms an operator paused)."""
    pauses = pauses or {}
    now = snap.now_ms
    click.echo(f"eventfwd at {iso(now)}  ({url})")
    click.echo(
        f"backlog     {snap.backlog} event(s): {snap.total('ready')} ready, "
        f"{snap.total('in_flight')} in flight, {snap.total('due')} due, "
        f"{snap.total('waiting')} waiting (backoff, Retry-After)"
        + ("" if all(p.scan_complete for p in snap.platforms) else f" [first {SCAN_LIMIT} read]")
    )
    age = snap.oldest_pending_age_s()
    click.echo(
        f"oldest      {'-' if age is None else span(age)} "
        f"(events older than {span(snap.max_event_age_s)} become expired dead letters)"
    )
    by_reason = " ".join(f"{k}={v}" for k, v in snap.dead_by_reason().items())
    click.echo(f"dead        {snap.dead}" + (f": {by_reason}" if by_reason else ""))
    now_row = _minute_counts(snap.minutes[-1]) if snap.minutes else {}
    last_row = _minute_counts(snap.minutes[-2]) if len(snap.minutes) > 1 else {}
    full = [_minute_counts(m) for m in snap.minutes[-6:-1]]
    mean = {k: sum(m[k] for m in full) / len(full) for k in MINUTE_FIELDS} if full else {}
    click.echo(f"{'per minute':12}{'this minute':>12}{'last minute':>13}{'5-min mean':>12}")
    for k in MINUTE_FIELDS:
        click.echo(
            f"  {k:10}{now_row.get(k, 0):>12}{last_row.get(k, 0):>13}{mean.get(k, 0):>12.1f}"
        )
    click.echo("queues      " + "  ".join(f"{k} {v}" for k, v in snap.queues.items()))
    beat = f"last pump tick {ago(snap.beat.last_tick_ms, now)}" if snap.beat else "no tick recorded"
    click.echo(f"beat        {beat}")
    if snap.platforms:
        click.echo()
        table(
            [
                [
                    p.platform_id,
                    str(p.backlog),
                    str(p.ready),
                    str(p.in_flight),
                    f"{p.cap:.0f}",
                    span(a) if (a := snap.oldest_pending_age_s(p)) is not None else "-",
                    _circuit(p, now),
                    f"{p.rate_per_s:.3g}/{p.rate_limit_per_s:g} per s"
                    + (" (429 pause)" if p.paused_until_ms else ""),
                    f"PAUSED by {pz.by} {ago(pz.at_ms, now)}"
                    if (pz := pauses.get(p.platform_id))
                    else "-",
                ]
                for p in snap.platforms
            ],
            [
                "PLATFORM",
                "BACKLOG",
                "READY",
                "IN FLIGHT",
                "CAP",
                "OLDEST",
                "CIRCUIT",
                "RATE",
                "OPERATOR",
            ],
        )
    totals = {k: v for k, v in snap.counters.items() if not k.startswith("dead:")}
    click.echo("\nall-time    " + " ".join(f"{k}={v}" for k, v in totals.items()))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="JSON (one line per refresh with --watch).")
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=2.0, show_default=True)
@click.option("--count", type=click.IntRange(min=1), help="With --watch: stop after N refreshes.")
@click.option(
    "--scan-limit",
    type=click.IntRange(min=1),
    default=SCAN_LIMIT,
    show_default=True,
    help="Entries read per platform for states and ages.",
)
@pass_context
@handle_errors
def stats(
    ctx: Context, as_json: bool, watch: bool, interval: float, count: int | None, scan_limit: int
) -> None:
    """Backlog (due, in flight, oldest), dead letters, rates, each platform's circuit and rate."""
    url = redact_url(ctx.settings.redis_url)
    shown = 0
    try:
        while True:
            snap = snapshot(ctx.client, ctx.settings, scan_limit=scan_limit)
            pauses = platforms.pauses_of(snap.platforms)
            if as_json:
                doc = snap.as_dict()
                for pid, d in doc["platforms"].items():
                    pause = pauses.get(pid)
                    d["paused_by"] = pause.by if pause else None
                    d["paused_at"] = pause.at_ms if pause else None
                click.echo(json.dumps(doc) if watch else json.dumps(doc, indent=2, sort_keys=True))
            else:
                if watch and sys.stdout.isatty():
                    click.clear()
                elif shown:
                    click.echo()
                render(snap, url, pauses)
            shown += 1
            if not watch or (count is not None and shown >= count):
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        return  # the end of a watch


@click.group()
def circuit() -> None:
    """Each platform's circuit breaker."""


@circuit.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_context
@handle_errors
def circuit_status(ctx: Context, as_json: bool) -> None:
    """Show every platform's circuit: state, reason, opened, next probe, failures."""
    rows: list[dict[str, Any]] = []
    known = ctx.records.platforms()
    pipe = ctx.client.pipeline(transaction=False)
    for pid in known:
        pipe.hgetall(ctx.ledger.keys.circuit(pid))
    for pid, raw in zip(known, pipe.execute(), strict=True):
        c = {text(k): text(v) for k, v in raw.items()}
        is_open = c.get("state") == "open"
        rows.append(
            {
                "platform_id": pid,
                "state": c.get("state", "closed"),
                "reason": c.get("reason") if is_open else None,
                "opened_at": _int(c.get("opened_ms")) if is_open else None,
                "next_probe_at": _int(c.get("next_probe_ms")) if is_open else None,
                "failures": int(c.get("failures", 0)),
                "last_status": c.get("last_status"),
                "last_message": c.get("last_message"),
            }
        )
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    table(
        [
            [
                r["platform_id"],
                r["state"],
                r["reason"] or "-",
                ago(r["opened_at"]),
                iso(r["next_probe_at"]),
                str(r["failures"]),
                (r["last_message"] or "")[:50] if r["state"] == "open" else "",
            ]
            for r in rows
        ],
        ["PLATFORM", "STATE", "REASON", "OPENED", "NEXT PROBE", "FAILURES", "LAST MESSAGE"],
    )


@circuit.command("reset")
@click.argument("platform", required=False)
@pass_context
@handle_errors
def circuit_reset(ctx: Context, platform: str | None) -> None:
    """Close a platform's circuit (every one when none is named), e.g. after fixing the API key."""
    known = ctx.records.platforms()
    if platform and platform not in known:
        fail(f"unknown platform {platform} (known: {', '.join(known) or 'none'})", EXIT_NOT_FOUND)
    targets = [platform] if platform else known
    by = operator()
    closed = [
        pid for pid in targets if platforms.reset_circuit(ctx.ledger, pid, by=by, source="cli")
    ]
    click.echo(
        f"closed the circuit of {len(closed)} platform(s) ({len(targets) - len(closed)} were not "
        "open); parked events drain at the platform's rate"
    )


def _int(value: str | None) -> int | None:
    return int(float(value)) if value else None
