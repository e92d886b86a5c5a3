"""`eventfwd platform pause|resume|status`: hold a platform's sending by hand, and let it go.

While a platform is paused its events are kept (new ones too) and nothing is sent; on resume
they drain at its rate. Each action is logged and reported like the console's.
"""

from __future__ import annotations

import json

import click

from eventfwd.cli.base import (
    EXIT_NOT_FOUND,
    Context,
    fail,
    handle_errors,
    operator,
    pass_context,
)
from eventfwd.cli.format import ago, table
from eventfwd.ops import platforms


@click.group()
def platform() -> None:
    """Pause and resume platforms by hand."""


def _known(ctx: Context, platform_id: str) -> None:
    known = ctx.records.platforms()
    if platform_id not in known:
        fail(
            f"unknown platform {platform_id} (known: {', '.join(known) or 'none'})", EXIT_NOT_FOUND
        )


@platform.command("pause")
@click.argument("platform_id", metavar="PLATFORM")
@click.option("--reason", default="", help="Why, for whoever looks next.")
@pass_context
@handle_errors
def platform_pause(ctx: Context, platform_id: str, reason: str) -> None:
    """Stop sending PLATFORM's events; they are kept until `platform resume`."""
    _known(ctx, platform_id)
    changed = platforms.pause(ctx.ledger, platform_id, by=operator(), source="cli", reason=reason)
    click.echo(
        f"paused {platform_id}: its events are kept and not sent"
        if changed
        else f"{platform_id} was already paused"
    )


@platform.command("resume")
@click.argument("platform_id", metavar="PLATFORM")
@pass_context
@handle_errors
def platform_resume(ctx: Context, platform_id: str) -> None:
    """Send PLATFORM's events again; the backlog drains at its rate."""
    _known(ctx, platform_id)
    changed = platforms.resume(ctx.ledger, platform_id, by=operator(), source="cli")
    click.echo(
        f"resumed {platform_id}: its events drain at its rate"
        if changed
        else f"{platform_id} was not paused"
    )


@platform.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_context
@handle_errors
def platform_status(ctx: Context, as_json: bool) -> None:
    """List platforms and which are paused (by whom, since when, why)."""
    known = ctx.records.platforms()
    pauses = platforms.read_pauses(ctx.client, ctx.ledger.keys, known)
    if as_json:
        for pid in known:
            p = pauses.get(pid)
            row = {"platform_id": pid, "paused": p is not None}
            if p:
                row |= {"paused_by": p.by, "paused_at": p.at_ms, "reason": p.reason}
            click.echo(json.dumps(row))
        return
    table(
        [
            [pid, "paused" if pid in pauses else "sending"]
            + (
                [pauses[pid].by, ago(pauses[pid].at_ms), pauses[pid].reason]
                if pid in pauses
                else []
            )
            for pid in known
        ],
        ["PLATFORM", "STATE", "BY", "SINCE", "REASON"],
    )
