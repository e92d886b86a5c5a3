"""`eventfwd send`: validate events from a file or stdin and enqueue the valid ones in batches.

Built for backfills too: the input is streamed (a JSON array as well as JSON lines), batches go
to Redis in one round trip each, into the backlog lane (claimed behind every live event of the
platform, so a million old events never delay live traffic), and the command waits while the
platform has many events ready, so that Redis holds a bounded part of the backfill at a time.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from typing import IO, Any

import click
import redis

from eventfwd.cli.base import EXIT_PROBLEM, EXIT_REDIS, Context, fail, handle_errors, pass_context
from eventfwd.cli.format import progress
from eventfwd.cli.jsonstream import BadItem, read_items
from eventfwd.core.errors import EnqueueError, InvalidEvent
from eventfwd.core.schema import ValidEvent, validate_platform_id
from producers import EventProducer

BATCH = 500
QUEUE_WAIT_S = 0.5


def source_size(stream: IO[str]) -> int | None:
    """Bytes in `stream` when it is a regular file (for a progress bar), else None."""
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


class _Batches:
    """Enqueue validated events in batches, waiting while many of the platform's are ready."""

    def __init__(self, ctx: Context, platform_id: str, *, size: int, max_queue: int) -> None:
        self.ctx = ctx
        self.platform_id = platform_id
        self.size = size
        self.max_queue = max_queue
        self.producer = EventProducer(settings=ctx.settings, backfill=True)
        self.pending: list[ValidEvent] = []
        self.enqueued = 0
        self.waited_s = 0.0

    def add(self, event: ValidEvent) -> bool:
        """Hold `event`; True when a batch is full and should be flushed."""
        self.pending.append(event)
        return len(self.pending) >= self.size

    def flush(self) -> None:
        if not self.pending:
            return
        self._wait_for_queue()
        self.producer.enqueue_validated(self.platform_id, self.pending)
        self.enqueued += len(self.pending)
        self.pending.clear()

    def _wait_for_queue(self) -> None:
        if not self.max_queue:
            return
        started = time.monotonic()
        ready = self.ctx.ledger.keys.ready(self.platform_id)
        while int(self.ctx.client.zcard(ready)) > self.max_queue:
            time.sleep(QUEUE_WAIT_S)
        self.waited_s += time.monotonic() - started


@click.command()
@click.argument("platform_id")
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
@click.option("--dry-run", is_flag=True, help="Validate only; enqueue nothing.")
@click.option("--quiet", is_flag=True, help="Do not print each refused event.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=BATCH,
    show_default=True,
    help="Events per round trip to Redis.",
)
@click.option(
    "--max-queue",
    type=click.IntRange(min=0),
    default=10_000,
    show_default=True,
    help="Wait while more of the platform's events are ready to send (0: never wait).",
)
@click.option(
    "--skip",
    type=click.IntRange(min=0),
    default=0,
    help="Skip the first N values of the input (to resume a stopped backfill).",
)
@pass_context
@handle_errors
def send(
    ctx: Context,
    platform_id: str,
    source: IO[str],
    dry_run: bool,
    quiet: bool,
    batch_size: int,
    max_queue: int,
    skip: int,
) -> None:
    """Validate and enqueue events from SOURCE (a JSON array or JSONL file, or - for stdin).

    Refused events are reported with their line and every broken rule; the valid ones are
    enqueued in batches. Exit status 1 when anything was refused.
    """
    try:
        validate_platform_id(platform_id)
    except InvalidEvent as exc:
        raise click.BadParameter(exc.errors[0].message, param_hint="PLATFORM_ID") from None
    batches = _Batches(ctx, platform_id, size=batch_size, max_queue=max_queue)
    read = valid = refused = minted = 0
    resume_at = skip
    label = "checking" if dry_run else "sending"
    try:
        with progress(source_size(source), label) as bar:
            for line, item in read_items(source, bar.update):
                read += 1
                if read <= skip:
                    continue
                problems = _problems(batches.producer, item)
                if isinstance(problems, ValidEvent):
                    valid += 1
                    minted += "id" not in item
                    if not dry_run and batches.add(problems):
                        batches.flush()
                        resume_at = read
                    continue
                refused += 1
                if not quiet:
                    for problem in problems:
                        click.echo(f"line {line}: {problem}", err=True)
            if not dry_run:
                batches.flush()
    except (EnqueueError, redis.RedisError) as exc:
        fail(
            f"{exc}; {batches.enqueued} event(s) were enqueued before it; "
            f"resume with --skip {resume_at}",
            EXIT_REDIS,
        )
    finally:
        batches.producer.close()
    _summary(valid, refused, minted, batches.waited_s, dry_run=dry_run, skipped=min(skip, read))
    if refused:
        sys.exit(EXIT_PROBLEM)


def _problems(producer: EventProducer, item: Any) -> ValidEvent | list[str]:
    if isinstance(item, BadItem):
        return [item.message]
    try:
        return producer.validate(item)
    except InvalidEvent as exc:
        return [str(error) for error in exc.errors]


def _summary(
    valid: int, refused: int, minted: int, waited_s: float, *, dry_run: bool, skipped: int
) -> None:
    verb = "valid (dry run, nothing enqueued)" if dry_run else "enqueued"
    extra = f" ({skipped} skipped)" if skipped else ""
    click.echo(f"{valid} {verb}, {refused} refused{extra}")
    if waited_s >= 1:
        click.echo(f"waited {waited_s:.0f}s in all for the platform's ready events to drain")
    if minted and not dry_run:
        click.echo(
            f"note: {minted} event(s) had no id, so eventfwd gave them one; "
            "sending this input again would send those twice"
        )
