"""`eventfwd web`: serve the browser console (eventfwd.web) for dead letters and the fleet."""

from __future__ import annotations

import click

from eventfwd.cli.base import Context, handle_errors, pass_context
from eventfwd.core.connection import url_host
from eventfwd.web.app import create_app
from eventfwd.web.server import check_bind, make_console_server


@click.command("web")
@click.option("--host", help="Address to bind [default: EVENTFWD_WEB_HOST, 127.0.0.1].")
@click.option("--port", type=click.IntRange(0, 65535), help="[default: EVENTFWD_WEB_PORT, 8640]")
@click.option("--read-only", is_flag=True, help="Show everything, change nothing.")
@pass_context
@handle_errors
def web(ctx: Context, host: str | None, port: int | None, read_only: bool) -> None:
    """Serve the web console: overview, dead letters, event lookup, replay, purge, pause.

    It binds 127.0.0.1 unless told otherwise, and refuses any other address unless
    EVENTFWD_WEB_SECRET is set (then every request must carry it). Every action is logged.
    """
    settings = ctx.settings
    if read_only:
        settings = settings.replace(web_read_only=True)
    host = host or settings.web_host
    check_bind(settings, host)
    chosen = settings.web_port if port is None else port
    server = make_console_server(create_app(settings, client=ctx.client), host, chosen)
    click.echo(
        f"eventfwd web console on http://{url_host(host)}:{server.server_port}/ (Ctrl-C stops)"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
