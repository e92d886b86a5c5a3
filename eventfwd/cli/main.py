"""`eventfwd`: the operator's command line.

The commands live with their concern (`dead`, `dead_bulk`, `status`, `platform`, `doctor`,
`metrics`, `send`, `spool`, `web`, and the dev kit's `dev` and `sink`); this module builds the
group, its shared options and the settings, and registers every command explicitly (no command
attaches itself on import).
Exit codes are listed in `eventfwd.cli.base`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from eventfwd.cli.base import EXIT_CONFIG, Context, Group, fail
from eventfwd.cli.dead import dead
from eventfwd.cli.dead_bulk import dead_purge, dead_replay, dead_retention
from eventfwd.cli.doctor import doctor
from eventfwd.cli.health import beat_health
from eventfwd.cli.metrics import metrics
from eventfwd.cli.platform import platform
from eventfwd.cli.send import send
from eventfwd.cli.spool import spool
from eventfwd.cli.status import circuit, stats
from eventfwd.cli.web import web
from eventfwd.core.errors import ConfigError
from eventfwd.core.launch import celery_argv
from eventfwd.core.settings import Settings, read_dotenv
from eventfwd.devkit.dev import dev
from eventfwd.devkit.sink.command import sink

# Commands that start what they need and read no settings here.
SELF_CONTAINED = ("sink", "dev")


def settings_from(options: dict[str, str | None]) -> Settings:
    """Settings from ./.env, the environment, then the shared options (validated alike)."""
    source = {**read_dotenv(Path.cwd() / ".env"), **os.environ}
    source.update({name: value for name, value in options.items() if value is not None})
    return Settings.from_mapping(source)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--redis-url", envvar="EVENTFWD_REDIS_URL", show_envvar=True, help="Redis of the fleet."
)
@click.option(
    "--key-prefix", envvar="EVENTFWD_KEY_PREFIX", show_envvar=True, help="Prefix of its keys."
)
@click.option("--queue", envvar="EVENTFWD_QUEUE", show_envvar=True, help="Celery queue.")
@click.version_option(package_name="eventfwd", message="eventfwd %(version)s")
@click.pass_context
def cli(
    ctx: click.Context, redis_url: str | None, key_prefix: str | None, queue: str | None
) -> None:
    """Forward user events to Moloco Commerce Media, durably. Inspect and repair the fleet."""
    if ctx.invoked_subcommand in SELF_CONTAINED:
        return
    options = {
        "EVENTFWD_REDIS_URL": redis_url,
        "EVENTFWD_KEY_PREFIX": key_prefix,
        "EVENTFWD_QUEUE": queue,
    }
    ctx.meta["eventfwd.options"] = {k: v for k, v in options.items() if v is not None}
    try:
        settings = settings_from(options)
    except ConfigError as exc:
        fail(f"configuration: {exc}", EXIT_CONFIG)
    ctx.obj = Context(settings)


def _celery(args: tuple[str, ...], what: str) -> None:
    """Become `celery -A worker WHAT ARGS`, with the shared options in its environment."""
    env = {**os.environ, **click.get_current_context().meta.get("eventfwd.options", {})}
    os.execve(sys.executable, celery_argv(what, *args), env)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """Run a delivery worker (`celery -A worker worker`; extra arguments go to Celery)."""
    _celery(celery_args, "worker")


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat(celery_args: tuple[str, ...]) -> None:
    """Run the scheduler (`celery -A worker beat`); a second one waits as a standby."""
    _celery(celery_args, "beat")


def main() -> None:
    cli(prog_name="eventfwd")


for command in (dead_replay, dead_purge, dead_retention):
    dead.add_command(command)
for command in (dead, stats, circuit, platform, doctor, beat_health, metrics, send, dev, sink,
                spool, web):  # fmt: skip
    cli.add_command(command)
