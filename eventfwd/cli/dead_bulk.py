"""`eventfwd dead replay|purge|retention`: change many dead letters, a page at a time.

Each page is one atomic script, Ctrl-C is acted on between pages (see `eventfwd.ops.bulk`), and a
progress bar shows how far it got.
"""

from __future__ import annotations

import sys
from typing import IO, Any

import click

from eventfwd.cli.base import (
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_PROBLEM,
    Context,
    fail,
    handle_errors,
    operator,
    pass_context,
)
from eventfwd.cli.format import describe, filter_options, make_filter, progress
from eventfwd.core.records import DeadFilter
from eventfwd.ops.audit import record_action
from eventfwd.ops.bulk import BulkResult, Pacer, Selection, purge_action, replay_action, run_pages
from worker.retention import enforce_retention


def read_ids(source: IO[str]) -> list[str]:
    """Ids one a line (the first word of each, so `dead list` output works too)."""
    out = []
    for line in source:
        words = line.split()
        if words and not words[0].startswith("#"):
            out.append(words[0])
    return out


def selection_options(func: Any) -> Any:
    func = click.option("--limit", type=click.IntRange(min=1), help="At most N, oldest first.")(
        func
    )
    func = filter_options(func)
    func = click.option("--all", "select_all", is_flag=True, help="Every dead letter.")(func)
    return click.argument("ids", nargs=-1)(func)


def _selection(
    ids: tuple[str, ...], select_all: bool, limit: int | None, filters: dict[str, Any]
) -> Selection:
    flt = make_filter(**filters)
    if ids and (select_all or limit or not flt.selects_all):
        raise click.UsageError("give dead-letter ids or a selection (--all or filters), not both")
    if ids:
        return Selection(ids=tuple(dict.fromkeys(ids)))
    if not select_all and flt.selects_all:
        raise click.UsageError(
            "give dead-letter ids, --all, or a filter (--platform, --reason, --status, "
            "--since, --until)"
        )
    return Selection(flt=flt, limit=limit)


def _which(sel: Selection) -> str:
    if sel.flt is None:
        return ""
    parts = [] if sel.flt.selects_all else [describe(sel.flt)]
    if sel.limit:
        parts.append(f"the oldest {sel.limit}")
    return f" ({', '.join(parts)})" if parts else ""


def _audit(kind: str, sel: Selection, result: BulkResult, note: str = "") -> None:
    """On the audit trail like the console's bulk jobs: what was selected, how it ended."""
    if sel.flt is None:
        what = f"{len(sel.ids)} id(s) given"
    else:
        what = _which(sel)[2:-1] or "every dead letter"
    what += "; interrupted" if result.interrupted else "; done"
    record_action(f"dead.{kind}", by=operator(), count=result.done, what=what + note, source="cli")


def _dry_run(ctx: Context, sel: Selection, verb: str) -> None:
    records = ctx.records
    if sel.flt is None:
        rows = records.dead_rows(list(sel.ids))
        missing = len(sel.ids) - len(rows)
        note = f"; {missing} of the ids given are not dead letters" if missing else ""
        click.echo(f"would {verb} {len(rows)} dead letter(s){note}")
        return
    flt: DeadFilter = sel.flt
    summary = records.dead_summary(flt)
    n = summary.total if sel.limit is None else min(summary.total, sel.limit)
    click.echo(f"would {verb} {n} dead letter(s){_which(sel)}")
    for title, counts in (("by platform", summary.by_platform), ("by reason", summary.by_reason)):
        if counts:
            click.echo(f"  {title:12} " + "  ".join(f"{k}={v}" for k, v in counts.items()))


def _open_circuits(ctx: Context) -> list[str]:
    platforms = ctx.records.platforms()
    pipe = ctx.client.pipeline(transaction=False)
    for pid in platforms:
        pipe.hget(ctx.ledger.keys.circuit(pid), "state")
    return [p for p, s in zip(platforms, pipe.execute(), strict=True) if s in (b"open", "open")]


@click.command("replay")
@selection_options
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    help="Dead letters per second put back in the schedule "
    "[default: EVENTFWD_RATE_LIMIT_PER_SECOND]; 0: no pacing.",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be replayed.")
@click.option(
    "--ids-from",
    type=click.File("r", encoding="utf-8"),
    help="Read the ids from this file (- for stdin), one a line; blank lines and # skipped.",
)
@pass_context
@handle_errors
def dead_replay(
    ctx: Context,
    ids: tuple[str, ...],
    select_all: bool,
    limit: int | None,
    rate: float | None,
    dry_run: bool,
    ids_from: IO[str] | None,
    **filters: Any,
) -> None:
    """Send dead letters again: same id, fresh attempts, at the platform's rate.

    Give ids, --all, or filters. Replayed events join the schedule at --rate and go out through
    the pump at each platform's send rate, behind live traffic. Ctrl-C stops between two pages:
    every event is either replayed or still a dead letter; run the command again to go on.
    """
    if ids_from is not None:
        ids = ids + tuple(read_ids(ids_from))
        if not ids:
            raise click.UsageError("--ids-from gave no ids")
    sel = _selection(ids, select_all, limit, filters)
    started_ms = ctx.records.now_ms()
    if dry_run:
        _dry_run(ctx, sel, "replay")
        return
    total = sel.count(ctx.records, until_ms=started_ms)
    pacer = Pacer(ctx.settings.rate_limit_per_s if rate is None else rate)
    with progress(total, f"replaying {total} dead letter(s)") as bar:
        result = run_pages(
            ctx.ledger,
            sel,
            replay_action(ctx.ledger),
            pacer=pacer,
            started_ms=started_ms,
            on_page=bar.update,
        )
    _audit("replay", sel, result)
    message = f"replayed {result.done} dead letter(s){_which(sel)}"
    if result.skipped:
        message += f"; {result.skipped} skipped (not dead letters)"
    if result.interrupted:
        fail(
            f"interrupted: {message}; the rest are still dead letters, none is half-moved "
            "(run the same command again to go on)",
            EXIT_INTERRUPTED,
        )
    click.echo(message)
    for pid in _open_circuits(ctx):
        click.echo(f"note: the circuit of platform {pid} is open; its events wait until it closes")
    if sel.ids and result.skipped:
        sys.exit(EXIT_NOT_FOUND)


@click.command("purge")
@selection_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--export",
    "export_path",
    type=click.Path(dir_okay=False),
    help="Append the dead letters to this JSON lines file before deleting them.",
)
@pass_context
@handle_errors
def dead_purge(
    ctx: Context,
    ids: tuple[str, ...],
    select_all: bool,
    limit: int | None,
    yes: bool,
    export_path: str | None,
    **filters: Any,
) -> None:
    """Delete dead letters for good (asks first unless --yes)."""
    sel = _selection(ids, select_all, limit, filters)
    started_ms = ctx.records.now_ms()
    total = sel.count(ctx.records, until_ms=started_ms)
    if not total:
        click.echo(f"no dead letters{_which(sel)}; nothing deleted")
        return
    if not yes:
        try:
            sure = click.confirm(f"delete {total} dead letter(s){_which(sel)} for good?")
        except click.Abort:
            sure = False
        if not sure:
            click.echo("nothing deleted")
            sys.exit(EXIT_PROBLEM)
    result = BulkResult()
    out: IO[str] | None = open(export_path, "a", encoding="utf-8") if export_path else None  # noqa: SIM115
    try:
        with progress(total, f"purging {total} dead letter(s)") as bar:
            run_pages(
                ctx.ledger,
                sel,
                purge_action(ctx.ledger, result, out),
                pacer=Pacer(0),
                started_ms=started_ms,
                result=result,
                on_page=bar.update,
            )
    finally:
        if out is not None:
            out.close()
        _audit("purge", sel, result, f"; exported to {export_path}" if export_path else "")
    message = f"purged {result.done} dead letter(s){_which(sel)}"
    if export_path:
        message += f", after writing {result.exported} to {export_path}"
    if result.skipped:
        message += f"; {result.skipped} skipped (not dead letters)"
    if result.interrupted:
        fail(f"interrupted: {message}; the rest are untouched", EXIT_INTERRUPTED)
    click.echo(message)
    if sel.ids and result.skipped:
        sys.exit(EXIT_NOT_FOUND)


@click.command("retention")
@click.option("--dry-run", is_flag=True, help="Only say what would be trimmed.")
@pass_context
@handle_errors
def dead_retention(ctx: Context, dry_run: bool) -> None:
    """Apply the retention limits now (beat does it periodically).

    Trims the dead letters older than EVENTFWD_DEAD_LETTER_RETENTION_DAYS and the oldest beyond
    EVENTFWD_DEAD_LETTER_MAX_COUNT, exporting them first to EVENTFWD_DEAD_LETTER_EXPORT_DIR when
    it is set.
    """
    s = ctx.settings
    r = enforce_retention(ctx.ledger, s, dry_run=dry_run, budget_s=None)
    click.echo(
        f"{r.over_age} dead letter(s) older than {s.dead_letter_retention_days:g} days, "
        f"{r.over_count} more over the limit of {s.dead_letter_max_count}"
    )
    if dry_run:
        where = s.dead_letter_export_dir or "nowhere: EVENTFWD_DEAD_LETTER_EXPORT_DIR is unset"
        click.echo(f"would trim {r.due}, exporting them to {where} (dry run)")
        return
    if r.error:
        fail(r.error, EXIT_PROBLEM)
    kept = f", exported first to {r.export_path}" if r.export_path else " without keeping a copy"
    click.echo(f"trimmed {r.trimmed}{kept}" if r.due else "nothing to trim")
