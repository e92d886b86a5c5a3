"""`eventfwd beat-health`: exit 0 while beat's heartbeat is fresh (a container healthcheck)."""

from __future__ import annotations

import time

import click

from eventfwd.cli.base import Context, handle_errors, pass_context
from eventfwd.core.keys import Keys
from worker.heartbeat import read_beat

EXIT_STALE = 1


@click.command("beat-health")
@click.option(
    "--max-age-seconds",
    type=click.FloatRange(min=1),
    default=None,
    help="Stale past this age [default: 4 x EVENTFWD_PUMP_INTERVAL_SECONDS, at least 60].",
)
@pass_context
@handle_errors
def beat_health(ctx: Context, max_age_seconds: float | None) -> None:
    """Exit 0 when beat's pump ticked recently (it proves beat and a worker), else 1."""
    limit_s = max_age_seconds or max(60.0, 4 * ctx.settings.pump_interval_s)
    tick = read_beat(ctx.client, Keys(ctx.settings.key_prefix))
    if tick is None:
        click.echo("no beat tick recorded")
        raise SystemExit(EXIT_STALE)
    age_s = max(0.0, time.time() - tick.last_tick_ms / 1000)
    click.echo(f"last tick {age_s:.0f}s ago on {tick.host} pid {tick.pid} (limit {limit_s:.0f}s)")
    if age_s > limit_s:
        raise SystemExit(EXIT_STALE)
