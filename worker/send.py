"""`eventfwd send`: validate events from a file or stdin and enqueue the valid ones in batches."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import IO, Any

import click

from core.errors import InvalidEvent
from core.schema import ValidEvent, validate_platform_id
from producers import EventProducer
from worker.cli_base import EXIT_PROBLEM, Context, handle_errors, pass_context

BATCH = 500


def read_events(stream: IO[str]) -> Iterator[tuple[int, Any]]:
    """Yield (line number, decoded value) from a JSON array or JSON lines."""
    first = ""
    while not first.strip():
        first = stream.readline()
        if not first:
            return
    if first.lstrip().startswith("["):
        text = first + stream.read()
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            yield exc.lineno, exc
            return
        yield from enumerate(items, start=1)
        return
    lineno = 1
    for line in [first, *stream]:
        if line.strip():
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                yield lineno, exc
        lineno += 1


@click.command()
@click.argument("platform_id")
@click.argument("source", type=click.File("r"), default="-")
@click.option("--dry-run", is_flag=True, help="Validate only; enqueue nothing.")
@click.option("--quiet", is_flag=True, help="Do not print each refused event.")
@pass_context
@handle_errors
def send(ctx: Context, platform_id: str, source: IO[str], dry_run: bool, quiet: bool) -> None:
    """Validate and enqueue events from SOURCE (a JSON array or JSONL file, or - for stdin).

    Refused events are reported with their line (or array position) and every broken rule;
    the valid ones are enqueued in batches. Exit status 1 when anything was refused.
    """
    producer = EventProducer(settings=ctx.settings)
    validate_platform_id(platform_id)
    batch: list[ValidEvent] = []
    accepted = refused = 0

    def flush() -> None:
        nonlocal accepted
        if batch and not dry_run:
            producer.enqueue_validated(platform_id, batch)
        accepted += len(batch)
        batch.clear()

    for where, item in read_events(source):
        if isinstance(item, json.JSONDecodeError):
            refused += 1
            if not quiet:
                click.echo(f"line {where}: not JSON ({item.msg})", err=True)
            continue
        try:
            valid = producer.validate(item)
        except InvalidEvent as exc:
            refused += 1
            if not quiet:
                for error in exc.errors:
                    click.echo(f"line {where}: {error}", err=True)
            continue
        batch.append(valid)
        if len(batch) >= BATCH:
            flush()
    flush()
    verb = "valid (dry run, nothing enqueued)" if dry_run else "enqueued"
    click.echo(f"{accepted} {verb}, {refused} refused")
    producer.close()
    if refused:
        sys.exit(EXIT_PROBLEM)
