"""Shared pieces of the `eventfwd` command line: the context, error handling, exit codes.

Expected failures are one line on stderr, `eventfwd: ...`, and one of these exit codes:

    0   success
    1   something was refused or found wrong (invalid events, doctor problems, declined purge)
    2   usage error (unknown option, bad filter or time)
    3   Redis unreachable, or refusing the command (auth, out of memory, read-only replica)
    4   unknown id (not in the ledger, or not a dead letter)
    78  bad configuration (an `EVENTFWD_` variable or option)
    130 interrupted (Ctrl-C); bulk commands stop between two atomic pages
"""

from __future__ import annotations

import functools
import getpass
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click
import redis

from eventfwd.core.connection import connect, redact_url
from eventfwd.core.errors import ConfigError, EventForwarderError
from eventfwd.core.ledger import Ledger
from eventfwd.core.records import Records
from eventfwd.core.settings import Settings

EXIT_PROBLEM, EXIT_USAGE, EXIT_REDIS, EXIT_NOT_FOUND = 1, 2, 3, 4
EXIT_CONFIG, EXIT_INTERRUPTED = 78, 130

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Context:
    settings: Settings
    _client: redis.Redis | None = None
    _ledger: Ledger | None = None

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = connect(
                self.settings.redis_url, socket_connect_timeout=2, socket_timeout=10
            )
        return self._client

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.client, self.settings)
        return self._ledger

    @property
    def records(self) -> Records:
        return Records(self.client, self.ledger.keys)


def operator() -> str:
    """Who acts, for the audit trail: `cli:<user>`."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in this environment (a container without /etc/passwd)
        return "cli"


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"eventfwd: {message}", err=True)
    sys.exit(code)


def redis_failure(exc: redis.RedisError) -> NoReturn:
    """Say in one line what went wrong with Redis, and exit 3."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_object(Context) if ctx else None
    url = redact_url(obj.settings.redis_url) if obj else "?"
    if isinstance(exc, redis.AuthenticationError):
        fail(f"Redis at {url} refused the login ({exc})", EXIT_REDIS)
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        fail(f"Redis at {url} is unreachable ({exc})", EXIT_REDIS)
    fail(f"Redis at {url} refused the command ({type(exc).__name__}: {exc})", EXIT_REDIS)


def handle_errors(func: F) -> F:
    """Expected failures become one line on stderr and a documented exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            fail(f"configuration: {exc}", EXIT_CONFIG)
        except redis.RedisError as exc:
            redis_failure(exc)
        except EventForwarderError as exc:
            fail(str(exc), EXIT_PROBLEM)

    return wrapper  # type: ignore[return-value]


class Group(click.Group):
    """A click group whose usage errors and interruptions are one line too (see the codes)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            fail(f"{exc.format_message()}{hint}", EXIT_USAGE)
        except click.Abort:
            fail("interrupted", EXIT_INTERRUPTED)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


pass_context = click.make_pass_decorator(Context)
