"""`eventfwd metrics`: serve the fleet's metrics for Prometheus (eventfwd/ops/metrics.py)."""

from __future__ import annotations

import time

import click
import redis
from prometheus_client import CollectorRegistry, start_http_server

from eventfwd.cli.base import Context, handle_errors, pass_context
from eventfwd.core.connection import url_host
from eventfwd.core.settings import Settings
from eventfwd.ops.metrics import LedgerCollector
from eventfwd.ops.snapshot import SCAN_LIMIT


def registry_for(
    client: redis.Redis, settings: Settings, *, cache_s: float = 5.0, scan_limit: int = SCAN_LIMIT
) -> CollectorRegistry:
    """A registry holding only the ledger collector (no process metrics of the exporter)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(client, settings, cache_s=cache_s, scan_limit=scan_limit))
    return registry


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=9808, show_default=True)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (loopback unless told: 0.0.0.0 for every interface).",
)
@click.option(
    "--cache-seconds",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Reuse one reading of Redis for this long.",
)
@click.option("--scan-limit", type=click.IntRange(min=1), default=SCAN_LIMIT, show_default=True)
@pass_context
@handle_errors
def metrics(ctx: Context, port: int, host: str, cache_seconds: float, scan_limit: int) -> None:
    """Serve the fleet's metrics for Prometheus at http://HOST:PORT/metrics (one per fleet).

    Every number, latency histograms included, is read from Redis: one exporter covers every
    worker. The names are listed in docs/reference/metrics.md.
    """
    ctx.client.ping()  # fail now, in one line, rather than at the first scrape
    registry = registry_for(ctx.client, ctx.settings, cache_s=cache_seconds, scan_limit=scan_limit)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    click.echo(
        f"serving metrics at http://{url_host(host)}:{server.server_port}/metrics (Ctrl-C stops)"
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
        click.echo("stopped")
