"""Shared pieces of the `eventfwd` command line: the context, error handling, exit codes."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click
import redis

from core.connection import connect, redact_url
from core.errors import ConfigError, EventForwarderError
from core.ledger import Ledger
from core.records import Records
from core.settings import Settings

EXIT_PROBLEM, EXIT_REDIS, EXIT_NOT_FOUND, EXIT_CONFIG = 1, 3, 4, 78

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Context:
    settings: Settings
    _client: redis.Redis | None = None

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = connect(
                self.settings.redis_url, socket_connect_timeout=2, socket_timeout=10
            )
        return self._client

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.client, self.settings)

    @property
    def records(self) -> Records:
        return Records(self.client, self.ledger.keys)


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"eventfwd: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Expected failures become one line on stderr and a documented exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            fail(f"configuration: {exc}", EXIT_CONFIG)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            ctx = click.get_current_context().find_object(Context)
            url = redact_url(ctx.settings.redis_url) if ctx else "?"
            fail(f"Redis at {url} is unreachable ({exc})", EXIT_REDIS)
        except EventForwarderError as exc:
            fail(str(exc), EXIT_PROBLEM)

    return wrapper  # type: ignore[return-value]


pass_context = click.make_pass_decorator(Context)
