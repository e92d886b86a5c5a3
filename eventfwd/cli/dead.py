"""`eventfwd dead ...`: look at dead letters, count them, export and import them.

Replay, purge and retention, which change many dead letters, are in `eventfwd.cli.dead_bulk`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import IO, Any

import click

from eventfwd.cli.base import (
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_PROBLEM,
    Context,
    fail,
    handle_errors,
    pass_context,
)
from eventfwd.cli.format import ago, describe, filter_options, iso, make_filter, printable, table
from eventfwd.cli.jsonstream import BadItem, read_items
from eventfwd.core.export import (
    IMPORTED,
    REPLACED,
    SKIPPED_DEAD,
    SKIPPED_DELIVERED,
    SKIPPED_LIVE,
    Importer,
    ImportRow,
    dead_line,
    open_private,
    parse_record,
)
from eventfwd.core.records import Envelope
from eventfwd.ops import lookup
from eventfwd.ops.bulk import Pacer, Selection, replay_action, run_pages


@click.group()
def dead() -> None:
    """Inspect, count, replay, purge, export and import dead letters."""


@dead.command("list")
@filter_options
@click.option(
    "--limit", type=click.IntRange(min=0), default=50, show_default=True, help="0: all of them."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_context
@handle_errors
def dead_list(ctx: Context, limit: int, as_json: bool, **filters: Any) -> None:
    """List dead letters, oldest first."""
    flt = make_filter(**filters)
    rows = ctx.records.dead_letters(flt, limit=limit or None)
    if as_json:
        for env in rows:
            click.echo(dead_line(env))
        return
    shown = list(rows)
    table(
        [
            [
                e.id,
                e.platform_id,
                e.reason or "-",
                e.status or "-",
                str(e.attempts),
                ago(e.dead_ms),
                (e.message or "")[:60],
            ]
            for e in shown
        ],
        ["ID", "PLATFORM", "REASON", "STATUS", "ATTEMPTS", "DEAD", "MESSAGE"],
    )
    which = "" if flt.selects_all else f" ({describe(flt)})"
    more = "; --limit 0 shows all" if limit and len(shown) == limit else ""
    total = ctx.records.dead_count()
    click.echo(f"{len(shown)} shown of {total} dead letter(s){which}{more}")


@dead.command("show")
@click.argument("event_id")
@click.option("--json", "as_json", is_flag=True, help="The whole record as JSON.")
@pass_context
@handle_errors
def dead_show(ctx: Context, event_id: str, as_json: bool) -> None:
    """Show one event's whole record, its attempts (time, status, message, duration), its body.

    Also for a waiting or in-flight event (with its next attempt time), and for one delivered
    within EVENTFWD_DELIVERED_TTL_SECONDS: when, after how many attempts, status and round trip
    (exit status 4, as it is no longer in the ledger).
    """
    found = lookup.find(ctx.client, ctx.ledger.keys, event_id)
    env = found.envelope
    if env is None:
        if found.delivered is not None:
            # exit 4 as before: it is no longer in the ledger, but here is what is known
            _delivered(found, as_json)
            sys.exit(EXIT_NOT_FOUND)
        fail(
            f"no event {event_id} in the ledger (delivered a while ago, purged, or never enqueued)",
            EXIT_NOT_FOUND,
        )
    if as_json:
        doc = env.as_dict()
        doc["next_attempt_at"] = found.next_attempt_ms
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    _show(env, found)


def _delivered(found: lookup.Found, as_json: bool) -> None:
    d = found.delivered
    assert d is not None
    if as_json:
        doc = {
            "id": found.id,
            "state": "delivered",
            "delivered_at": d.delivered_ms,
            "attempts": d.attempts,
            "status": int(d.status) if d.status and d.status.isdigit() else None,
            "rtt_ms": d.rtt_ms,
            "platform_id": d.platform_id,
            "enqueued_at": d.enqueued_ms,
        }
        click.echo(json.dumps(doc, indent=2))
        return
    if not d.detailed:
        click.echo(f"event {found.id} was delivered (no details kept by the worker that sent it)")
        return
    click.echo(
        f"event {found.id} was delivered to platform {d.platform_id or '?'} at "
        f"{iso(d.delivered_ms)} ({ago(d.delivered_ms)}) after {d.attempts} attempt(s): "
        f"HTTP {d.status or '?'} in {d.rtt_ms if d.rtt_ms is not None else '?'} ms"
    )


def _show(env: Envelope, found: lookup.Found) -> None:
    def line(name: str, value: Any) -> None:
        click.echo(f"{name:11} {printable(value) if value not in (None, '') else '-'}")

    for name, value in (
        ("id", env.id),
        ("platform", env.platform_id),
        ("state", env.state),
        ("reason", env.reason),
        ("status", env.status),
        ("message", env.message),
        ("attempts", f"{env.attempts} (replayed {env.replays} time(s))"),
    ):
        line(name, value)
    when = found.next_attempt_ms
    line("next", f"{iso(when)} ({found.next_attempt()})" if when else found.next_attempt())
    for name, ms in (
        ("event time", env.event_ms),
        ("enqueued", env.enqueued_ms),
        ("dead", env.dead_ms),
        ("replayed", env.replayed_ms),
    ):
        if ms:
            line(name, f"{iso(ms)} ({ago(ms)})")
    click.echo(f"history ({len(env.history)} attempt(s), newest last):")
    if env.history:
        table(
            [
                [
                    "  " + iso(h.get("at_ms")),
                    str(h.get("status") or "-"),
                    str(h.get("outcome") or "-"),
                    f"{h['duration_ms']}ms" if "duration_ms" in h else "-",
                    str(h.get("message") or ""),
                ]
                for h in env.history
            ],
            ["  TIME", "STATUS", "OUTCOME", "DURATION", "MESSAGE"],
        )
    click.echo("event:")
    click.echo(printable(json.dumps(env.event, indent=2, ensure_ascii=False), keep_newlines=True))


def _replay_imported(ctx: Context, ids: list[str]) -> None:
    result = run_pages(
        ctx.ledger,
        Selection(ids=tuple(ids)),
        replay_action(ctx.ledger),
        pacer=Pacer(ctx.settings.rate_limit_per_s),
        started_ms=ctx.records.now_ms(),
    )
    click.echo(f"replayed {result.done} of the {len(ids)} imported")
    if result.interrupted:
        fail(
            "interrupted: the rest are imported dead letters (`dead replay` them)", EXIT_INTERRUPTED
        )


@dead.command("stats")
@filter_options
@click.option(
    "--by",
    "group_by",
    type=click.Choice(["status", "message"]),
    default="status",
    show_default=True,
    help="Groups of (platform, reason, status), or of those and Moloco's message.",
)
@click.option("--json", "as_json", is_flag=True)
@pass_context
@handle_errors
def dead_stats(ctx: Context, group_by: str, as_json: bool, **filters: Any) -> None:
    """Count dead letters by platform, reason and last HTTP status (and message)."""
    flt = make_filter(**filters)
    by_message = group_by == "message"
    s = ctx.records.dead_summary(flt, by_message=by_message)
    if as_json:
        doc = {
            "total": s.total,
            "by_platform": s.by_platform,
            "by_reason": s.by_reason,
            "by_status": s.by_status,
            "groups": s.groups,
            "oldest_dead_at": s.oldest_dead_ms,
            "newest_dead_at": s.newest_dead_ms,
        }
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
        return
    which = "" if flt.selects_all else f" ({describe(flt)})"
    if not s.total:
        click.echo(f"no dead letters{which}")
        return
    click.echo(
        f"{s.total} dead letter(s){which}: oldest dead {ago(s.oldest_dead_ms)}, "
        f"newest {ago(s.newest_dead_ms)}"
    )
    for title, counts in (
        ("by platform", s.by_platform),
        ("by reason", s.by_reason),
        ("by status", s.by_status),
    ):
        click.echo(f"{title:12} " + "  ".join(f"{k}={v}" for k, v in counts.items()))
    click.echo()
    if by_message:
        table(
            [
                [
                    g["platform_id"],
                    g["reason"],
                    str(g["status"] or "none"),
                    str(g["count"]),
                    " ".join((g["message"] or "-").split())[:80],
                ]
                for g in s.groups
            ],
            ["PLATFORM", "REASON", "STATUS", "COUNT", "MESSAGE"],
        )
        return
    table(
        [
            [g["platform_id"], g["reason"], str(g["status"] or "none"), str(g["count"])]
            for g in s.groups
        ],
        ["PLATFORM", "REASON", "STATUS", "COUNT"],
    )


@dead.command("export")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True), default="-")
@filter_options
@click.option("--limit", type=click.IntRange(min=1), help="At most N, oldest first.")
@click.option("--append", is_flag=True, help="Add to FILE when it exists (default: refuse).")
@click.option(
    "--redact",
    is_flag=True,
    help="Replace user identifiers, IP and user agent with SHA-256 digests (for sharing).",
)
@pass_context
@handle_errors
def dead_export(
    ctx: Context, file: str, limit: int | None, append: bool, redact: bool, **filters: Any
) -> None:
    """Write dead letters to FILE (- for stdout) as JSON lines, for `dead import` or keeping.

    The lines hold user identifiers, IP addresses and user agents: FILE is created readable by
    its owner only. --redact writes digests in their place, for a file to share.
    """
    flt = make_filter(**filters)
    if file != "-" and Path(file).exists() and not append:
        raise click.BadParameter(f"{file} exists; use --append or another name", param_hint="FILE")
    out: IO[str] = sys.stdout if file == "-" else open_private(file)
    n = 0
    try:
        for env in ctx.records.dead_letters(flt, limit=limit):
            out.write(dead_line(env, redacted=redact) + "\n")
            n += 1
    finally:
        if out is not sys.stdout:
            out.close()
    where = "stdout" if file == "-" else file
    which = "" if flt.selects_all else f" ({describe(flt)})"
    click.echo(f"exported {n} dead letter(s){which} to {where}", err=file == "-")


@dead.command("import")
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
@click.option("--replace", is_flag=True, help="Overwrite dead letters with the same id.")
@click.option("--no-validate", is_flag=True, help="Keep event bodies as they are (an archive).")
@click.option("--dry-run", is_flag=True, help="Check the lines only; write nothing.")
@click.option(
    "--replay",
    is_flag=True,
    help="Replay what was imported at once (paced at EVENTFWD_RATE_LIMIT_PER_SECOND).",
)
@pass_context
@handle_errors
def dead_import(
    ctx: Context, source: IO[str], replace: bool, no_validate: bool, dry_run: bool, replay: bool
) -> None:
    """Read dead letters from SOURCE (what `dead export` wrote) back into the ledger.

    Imported events are dead letters again, with their reason, history and times: replay them
    with `eventfwd dead replay`, or here with --replay. An id that is waiting, in flight or was
    delivered recently is never touched. Each line is checked first (the event against Moloco's
    rules, unless --no-validate); bad lines are reported by number and skipped. Exit status 1
    when any was.
    """
    importer = Importer(ctx.client, ctx.ledger.keys)
    now_ms = int(time.time() * 1000) if dry_run else ctx.records.now_ms()
    outcomes: dict[int, int] = {}
    batch: list[ImportRow] = []
    refused = checked = 0

    written: list[str] = []

    def flush() -> None:
        if batch and not dry_run:
            for row, outcome in zip(batch, importer.write(batch, replace=replace), strict=True):
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                if outcome in (IMPORTED, REPLACED):
                    written.append(row.id)
        batch.clear()

    for line, item in read_items(source):
        row = (
            [item.message]
            if isinstance(item, BadItem)
            else parse_record(item, ctx.settings, now_ms=now_ms, validate=not no_validate)
        )
        if isinstance(row, ImportRow):
            checked += 1
            batch.append(row)
            if len(batch) >= 200:
                flush()
            continue
        refused += 1
        for problem in row:
            click.echo(f"line {line}: {problem}", err=True)
    flush()
    if dry_run:
        click.echo(f"{checked} dead letter(s) would be imported, {refused} refused (dry run)")
    else:
        skipped = {
            "a live event has the id": outcomes.get(SKIPPED_LIVE, 0),
            "delivered recently": outcomes.get(SKIPPED_DELIVERED, 0),
            "already dead letters (--replace overwrites)": outcomes.get(SKIPPED_DEAD, 0),
        }
        click.echo(
            f"imported {outcomes.get(IMPORTED, 0)}, replaced {outcomes.get(REPLACED, 0)}, "
            f"refused {refused}"
            + "".join(f"; skipped {n}: {why}" for why, n in skipped.items() if n)
        )
        if replay and written:
            _replay_imported(ctx, written)
    if refused:
        sys.exit(EXIT_PROBLEM)
