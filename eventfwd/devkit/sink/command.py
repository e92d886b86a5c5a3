"""`eventfwd sink`: the click command (the main CLI attaches it with `cli.add_command(sink)`)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from eventfwd.devkit.sink.faults import FaultSpecError, parse_fault_spec
from eventfwd.devkit.sink.server import run_sink

HELP = """Run a fake Moloco User Event API on loopback, with fault injection.

Serves POST /rmp/event/v1/platforms/{platform_id}/userevents like Moloco (x-api-key,
the OpenAPI body schema and the server's rules, gRPC-status errors, 200 {} on success)
and a control API under /_sink/: GET stats, GET events?limit=N, GET|POST|DELETE faults,
POST reset, GET health.

\b
--fault HEAD[:OPTION]...   (repeatable; rules form a FIFO plan, the first live one decides)
  HEAD    STATUS (400..599) | latency | hang | timeout (= hang) | reset
          | malformed | truncated | mix:KIND=WEIGHT[,KIND=WEIGHT]...
  OPTION  count=N        the rule decides N requests, then drops
          seconds=S      the rule lives S seconds, then drops
          platform=ID    only requests for this platform
          retry_after=S  Retry-After header on a status answer
          message=TEXT   message of a status answer (no ':')
          ms=N           latency before the normal answer
          hang_s=S       a hang closes the connection after S seconds (default never)
          seed=N         reproducible draws of a mix
\b
  reset: RST, no answer. malformed: 200 with a non-JSON body. truncated: 200 whose body
  is cut short, then the connection closes. Mix weights are probabilities; the remainder
  is answered normally. Mix options apply to every entry that takes them.
\b
Examples:
  --fault 500:count=10
  --fault 429:retry_after=2:seconds=30
  --fault reset:count=5 --fault hang:count=1
  --fault latency:ms=300:seconds=10
  --fault 503:platform=acme:count=3
  --fault mix:500=0.1,503=0.05,429=0.05,reset=0.02,timeout=0.01:seed=7
\b
The JSON form of a rule (POST /_sink/faults) names options with units
(retry_after_s, latency_ms; the command line takes these too):
  {"fault": 429, "retry_after_s": 2, "seconds": 30}
  {"fault": "latency", "latency_ms": 300, "count": 5, "platform": "acme"}
  {"fault": "mix", "seed": 7, "mix": [{"fault": 500, "weight": 0.1},
                                      {"fault": "reset", "weight": 0.02}]}
"""


def _parse_faults(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> list[dict[str, Any]]:
    try:
        return [parse_fault_spec(value) for value in values]
    except FaultSpecError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


@click.command("sink", help=HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8090,
    show_default=True,
    help="Port; 0 picks a free one (printed on the ready line).",
)
@click.option(
    "--api-key",
    envvar="EVENTFWD_MOLOCO_API_KEY",
    show_envvar=True,
    default="dev-key",
    help="The one API key accepted in x-api-key [default: dev-key].",
)
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    help="Allowed platform id (repeatable); others get 404. None given: any platform.",
)
@click.option(
    "--record",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append every accepted event to FILE as a JSON line.",
)
@click.option(
    "--latency-ms",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Delay added to every API answer.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    callback=_parse_faults,
    help="Fault rule in the grammar above (repeatable).",
)
@click.option(
    "--quiet", is_flag=True, help="Log nothing per request (ready and summary lines only)."
)
@click.pass_context
def sink(
    ctx: click.Context,
    host: str,
    port: int,
    api_key: str,
    platforms: tuple[str, ...],
    record: Path | None,
    latency_ms: int,
    faults: list[dict[str, Any]],
    quiet: bool,
) -> None:
    if not api_key:
        raise click.BadParameter("must not be empty", ctx=ctx, param_hint="--api-key")
    if not quiet:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    key_source = {
        ParameterSource.COMMANDLINE: "--api-key",
        ParameterSource.ENVIRONMENT: "EVENTFWD_MOLOCO_API_KEY",
    }.get(ctx.get_parameter_source("api_key") or ParameterSource.DEFAULT, "the built-in default")

    def announce(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()

    try:
        stats = run_sink(
            host,
            port,
            api_key,
            platforms or None,
            record,
            latency_ms=latency_ms,
            faults=faults,
            log_answers=not quiet,
            key_source=key_source,
            announce=announce,
        )
    except OSError as exc:
        # Binding the port or opening the record file.
        raise click.ClickException(f"cannot start the sink: {exc}") from None
    click.echo(
        f"sink stopped: requests={stats['requests']} accepted={stats['accepted']} "
        f"unique_ids={stats['unique_ids']} duplicates={stats['duplicates']} "
        f"by_status={json.dumps(stats['by_status'])} by_fault={json.dumps(stats['by_fault'])}"
    )
