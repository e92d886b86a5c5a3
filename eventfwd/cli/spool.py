"""`eventfwd spool drain|status`: the producers' local spool (EVENTFWD_SPOOL_DIR)."""

from __future__ import annotations

import json
import time

import click
import redis

from eventfwd.cli.base import (
    EXIT_CONFIG,
    EXIT_PROBLEM,
    EXIT_REDIS,
    Context,
    fail,
    handle_errors,
    pass_context,
)
from producers.drain import drain_spool
from producers.spool import Spool

BYTES_PER_MB = 1024 * 1024


def _spool(ctx: Context, directory: str | None) -> Spool:
    directory = directory or ctx.settings.spool_dir
    if not directory:
        fail("configuration: no spool: set EVENTFWD_SPOOL_DIR or pass --dir", EXIT_CONFIG)
    return Spool(directory, max_bytes=int(ctx.settings.spool_max_mb * BYTES_PER_MB))


_DIR = click.option("--dir", "directory", help="Spool directory [EVENTFWD_SPOOL_DIR].")


@click.group()
def spool() -> None:
    """The local spool that producers write to while Redis is unavailable."""


@spool.command("status")
@_DIR
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@pass_context
@handle_errors
def spool_status(ctx: Context, directory: str | None, as_json: bool) -> None:
    """What the spool holds: batches and events waiting, being drained, unreadable."""
    status = _spool(ctx, directory).status()
    if as_json:
        click.echo(json.dumps(status.as_dict(), sort_keys=True))
        return
    oldest = "-"
    if status.oldest_ms is not None:
        oldest = f"{max(0.0, time.time() - status.oldest_ms / 1000):.0f}s ago"
    click.echo(f"spool    {status.directory}")
    click.echo(f"waiting  {status.ready_events} event(s) in {status.ready_files} batch(es)")
    click.echo(f"draining {status.claimed_events} event(s) in {status.claimed_files} batch(es)")
    click.echo(f"corrupt  {status.corrupt_files} file(s) (kept in corrupt/)")
    click.echo(
        f"size     {status.used_bytes / BYTES_PER_MB:.1f} of {status.max_bytes / BYTES_PER_MB:.0f}"
        f" MB; oldest {oldest}"
    )


@spool.command("drain")
@_DIR
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@pass_context
@handle_errors
def spool_drain(ctx: Context, directory: str | None, as_json: bool) -> None:
    """Move every spooled event into Redis now, keeping its id (safe beside running producers)."""
    try:
        result = drain_spool(_spool(ctx, directory), ctx.ledger)
    except redis.ResponseError as exc:  # full, read-only, ...: nothing lost, batches stay
        fail(f"Redis refused the drain: {exc}", EXIT_REDIS)
    if as_json:
        payload = {
            "batches": result.files,
            "events": result.events,
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "already_delivered": result.already_delivered,
            "corrupt_files": result.corrupt_files,
        }
        click.echo(json.dumps(payload, sort_keys=True))
    else:
        click.echo(
            f"drained {result.events} event(s) from {result.files} batch(es): "
            f"{result.accepted} enqueued, "
            f"{result.duplicates + result.already_delivered} already in the ledger"
        )
    if result.corrupt_files:
        click.echo(
            f"{result.corrupt_files} unreadable file(s) moved to corrupt/ (kept, not sent)",
            err=True,
        )
        raise SystemExit(EXIT_PROBLEM)
