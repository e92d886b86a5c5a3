"""Settings: one frozen object built from one mapping (the environment), validated at start.

Only process edges (worker app, CLI, producer constructor) call `Settings.from_env()`; everything
else receives a `Settings`. Every variable is prefixed `EVENTFWD_`; an unknown or malformed one
is a `ConfigError` that names it. Per-platform overrides use
`EVENTFWD_PLATFORM_<KEY>_{BASE_URL,API_KEY,RATE_LIMIT_PER_SECOND}` where `<KEY>` is the platform
id upper-cased with every character outside `A-Z0-9` replaced by `_`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from eventfwd.core.connection import check_url, redact_url
from eventfwd.core.errors import ConfigError, InvalidEvent

PREFIX = "EVENTFWD_"
_DAY_S = 86_400.0


def platform_env_key(platform_id: str) -> str:
    """Return the `<KEY>` part of a platform's override variables."""
    return re.sub(r"[^A-Z0-9]", "_", platform_id.upper())


@dataclass(frozen=True, slots=True)
class PlatformOverride:
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    rate_limit_per_s: float | None = None


@dataclass(frozen=True, slots=True)
class PlatformConfig:
    """What the worker needs to talk to Moloco for one platform."""

    platform_id: str
    base_url: str | None
    api_key: str | None = field(repr=False)
    rate_limit_per_s: float

    @property
    def endpoint(self) -> str:
        assert self.base_url is not None
        return f"{self.base_url}/rmp/event/v1/platforms/{self.platform_id}/userevents"


def _parse_float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name}={raw!r} must be a finite number >= 0")
    return value


def _positive_float(name: str, raw: str) -> float:
    value = _parse_float(name, raw)
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be greater than 0")
    return value


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < 1:
        raise ConfigError(f"{name}={raw!r} must be at least 1")
    return value


def _bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true or false)")


def _url(schemes: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().rstrip("/")
        # `https://x  # prod` set in a shell or a compose file: the comment is not part of the
        # URL, and every request would go to a broken one; no URL we take contains whitespace.
        if any(c.isspace() for c in value):
            raise ConfigError(f"{name}={redact_url(value)!r} contains whitespace")
        if not value.startswith(tuple(f"{s}://" for s in schemes)):
            raise ConfigError(
                f"{name} must start with one of {', '.join(s + '://' for s in schemes)}"
            )
        return value

    return parse


def _text(name: str, raw: str) -> str:
    if not raw.strip():
        raise ConfigError(f"{name} is set but empty")
    return raw.strip()


def _platform_list(name: str, raw: str) -> frozenset[str]:
    # The same rule as an enqueued platform id (it goes in the URL path).
    from eventfwd.core.schema.validate import validate_platform_id

    ids = [part.strip() for part in raw.split(",")]
    if not any(ids):
        raise ConfigError(f"{name} is set but names no platform (unset it to allow any)")
    out: set[str] = set()
    for platform_id in ids:
        if not platform_id:
            continue
        try:
            out.add(validate_platform_id(platform_id))
        except InvalidEvent as exc:
            raise ConfigError(f"{name}: {platform_id!r} {exc.errors[0].message}") from None
    return frozenset(out)


CLIENT_ID_POLICIES = ("keep", "ignore")


def _client_ids(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in CLIENT_ID_POLICIES:
        raise ConfigError(f"{name}={raw!r} must be one of {', '.join(CLIENT_ID_POLICIES)}")
    return value


def _key_prefix(name: str, raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", raw):
        raise ConfigError(f"{name}={raw!r} must be 1-64 characters of A-Z a-z 0-9 _ . -")
    return raw


_HTTP = _url(("http", "https"))
_REDIS_SCHEME = _url(("redis", "rediss", "sentinel", "unix"))


def _redis_url(name: str, raw: str) -> str:
    value = _REDIS_SCHEME(name, raw)
    check_url(value)  # the ledger's and the broker's reading, at start (names the variable)
    return value


# variable suffix -> (attribute, parser). Units are in the attribute names.
# EVENTFWD_PLATFORM_<KEY>_<NAME>: the PlatformOverride attribute each sets, and its parser.
_PLATFORM_FIELDS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "BASE_URL": ("base_url", _HTTP),
    "API_KEY": ("api_key", _text),
    "RATE_LIMIT_PER_SECOND": ("rate_limit_per_s", _positive_float),
}
_PLATFORM_RE = re.compile(rf"^EVENTFWD_PLATFORM_([A-Z0-9_]+?)_({'|'.join(_PLATFORM_FIELDS)})$")

_FIELDS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "REDIS_URL": ("redis_url", _redis_url),
    "MOLOCO_BASE_URL": ("moloco_base_url", _HTTP),
    "MOLOCO_API_KEY": ("moloco_api_key", _text),
    "RETRY_BASE_SECONDS": ("retry_base_s", _positive_float),
    "RETRY_MAX_SECONDS": ("retry_max_s", _positive_float),
    "MAX_ATTEMPTS": ("max_attempts", _positive_int),
    "CIRCUIT_FAILURE_THRESHOLD": ("circuit_failure_threshold", _positive_int),
    "CIRCUIT_PROBE_SECONDS": ("circuit_probe_s", _positive_float),
    "REPLAY_INTERVAL_SECONDS": ("replay_interval_s", _positive_float),
    "MAX_REPLAYS": ("max_replays", _positive_int),
    "PUMP_INTERVAL_SECONDS": ("pump_interval_s", _positive_float),
    "LEASE_SECONDS": ("lease_s", _positive_float),
    "MAX_EVENT_AGE_SECONDS": ("max_event_age_s", _positive_float),
    "RATE_LIMIT_PER_SECOND": ("rate_limit_per_s", _positive_float),
    "HTTP_TIMEOUT_SECONDS": ("http_timeout_s", _positive_float),
    "DELIVERED_TTL_SECONDS": ("delivered_ttl_s", _positive_float),
    "KEY_PREFIX": ("key_prefix", _key_prefix),
    "QUEUE": ("queue", _key_prefix),
    "STRICT_FIELDS": ("strict_fields", _bool),
    "SPOOL_DIR": ("spool_dir", _text),
    "SPOOL_MAX_MB": ("spool_max_mb", _positive_float),
    "HASH_IDENTIFIERS": ("hash_identifiers", _bool),
    "HASH_PEPPER": ("hash_pepper", _text),
    "BATCH_SIZE": ("batch_size", _positive_int),
    "DELIVERY_THREADS": ("delivery_threads", _positive_int),
    "POISON_THRESHOLD": ("poison_threshold", _positive_int),
    "CONCURRENCY_INITIAL": ("concurrency_initial", _positive_int),
    "CONCURRENCY_MIN": ("concurrency_min", _positive_int),
    "CONCURRENCY_MAX": ("concurrency_max", _positive_int),
    "DEAD_LETTER_RETENTION_DAYS": ("dead_letter_retention_days", _positive_float),
    "DEAD_LETTER_MAX_COUNT": ("dead_letter_max_count", _positive_int),
    "DEAD_LETTER_EXPORT_DIR": ("dead_letter_export_dir", _text),
    "WEB_HOST": ("web_host", _text),
    "WEB_PORT": ("web_port", _positive_int),
    "WEB_SECRET": ("web_secret", _text),
    "WEB_READ_ONLY": ("web_read_only", _bool),
    "ALLOWED_PLATFORMS": ("allowed_platforms", _platform_list),
    "CLIENT_IDS": ("client_ids", _client_ids),
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of eventfwd, with the defaults of DESIGN.md §6."""

    redis_url: str = "redis://localhost:6379/0"
    moloco_base_url: str | None = None
    moloco_api_key: str | None = field(default=None, repr=False)
    retry_base_s: float = 5.0
    retry_max_s: float = 600.0
    max_attempts: int = 6
    circuit_failure_threshold: int = 5
    circuit_probe_s: float = 900.0
    replay_interval_s: float = 900.0
    max_replays: int = 10
    pump_interval_s: float = 1.0
    lease_s: float = 60.0
    max_event_age_s: float = 7 * _DAY_S
    rate_limit_per_s: float = 30.0
    http_timeout_s: float = 10.0
    delivered_ttl_s: float = _DAY_S
    key_prefix: str = "eventfwd"
    queue: str = "eventfwd"
    strict_fields: bool = False
    spool_dir: str | None = None
    spool_max_mb: float = 512.0
    hash_identifiers: bool = False
    hash_pepper: str | None = field(default=None, repr=False)
    # The most events one claim hands a delivery engine (bounds one script's run time).
    batch_size: int = 100
    # POSTs in flight per worker process: Moloco at 50 ms needs >= 50 in flight per 1,000
    # events/s (docs/performance.md); a SIGKILL may resend what was in flight.
    delivery_threads: int = 100
    poison_threshold: int = 3
    # Each platform's in-flight cap, fleet-wide, adapted by AIMD (lua/concurrency.lua):
    # where a new platform starts, and the bounds. A hanging platform holds at most its cap of
    # the fleet's threads, and receives at most its cap of requests before the first timeout.
    concurrency_initial: int = 10
    concurrency_min: int = 1
    concurrency_max: int = 200
    dead_letter_retention_days: float = 30.0
    dead_letter_max_count: int = 1_000_000
    dead_letter_export_dir: str | None = None
    # `eventfwd web`: loopback unless a secret guards it (eventfwd/web/server.py)
    web_host: str = "127.0.0.1"
    web_port: int = 8640
    web_secret: str | None = field(default=None, repr=False)
    web_read_only: bool = False
    # None: any platform id; else only these (enqueue refuses others, the worker sends none).
    allowed_platforms: frozenset[str] | None = None
    # "keep": an event's own `id` is Moloco's de-duplication key; "ignore": every event gets a
    # fresh one (for callers who may not choose ids: a known id sent first silences the real one).
    client_ids: str = "keep"
    platforms: Mapping[str, PlatformOverride] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, dotenv: bool = True) -> Settings:
        """Build settings from `environ` (default `os.environ`, plus `./.env` if present)."""
        source: dict[str, str] = {}
        if environ is None:
            if dotenv:
                source.update(read_dotenv(Path.cwd() / ".env"))
            source.update(os.environ)
        else:
            source.update(environ)
        return cls.from_mapping(source)

    @classmethod
    def from_mapping(cls, source: Mapping[str, str]) -> Settings:
        """Build settings from a mapping of `EVENTFWD_*` variables; other keys are ignored."""
        values: dict[str, Any] = {}
        overrides: dict[str, dict[str, Any]] = {}
        for name, raw in source.items():
            if not name.startswith(PREFIX):
                continue
            suffix = name[len(PREFIX) :]
            if suffix in _FIELDS:
                attr, parse = _FIELDS[suffix]
                values[attr] = parse(name, raw)
                continue
            match = _PLATFORM_RE.match(name)
            if match:
                key, what = match.groups()
                attr, parse = _PLATFORM_FIELDS[what]
                overrides.setdefault(key, {})[attr] = parse(name, raw)
                continue
            known = [PREFIX + s for s in _FIELDS]
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"unknown setting {name}{hint}")
        values["platforms"] = {k: PlatformOverride(**v) for k, v in overrides.items()}
        settings = cls(**values)
        settings._check()
        return settings

    def _check(self) -> None:
        if not self.concurrency_min <= self.concurrency_initial <= self.concurrency_max:
            raise ConfigError(
                "EVENTFWD_CONCURRENCY_MIN <= EVENTFWD_CONCURRENCY_INITIAL <= "
                "EVENTFWD_CONCURRENCY_MAX must hold"
            )
        self._check_platform_names()
        if self.retry_max_s < self.retry_base_s:
            raise ConfigError("EVENTFWD_RETRY_MAX_SECONDS must be >= EVENTFWD_RETRY_BASE_SECONDS")
        if self.web_secret is not None and len(self.web_secret) < 16:
            raise ConfigError("EVENTFWD_WEB_SECRET must be at least 16 characters")
        if self.lease_s <= self.http_timeout_s * 2:
            raise ConfigError(
                "EVENTFWD_LEASE_SECONDS must be more than twice EVENTFWD_HTTP_TIMEOUT_SECONDS, "
                "or a slow request would outlive its lease and be sent twice"
            )

    def _check_platform_names(self) -> None:
        """With an allow-list, every override variable must belong to exactly one platform.

        `acme-eu`, `acme.eu` and `ACME_EU` share the variables `EVENTFWD_PLATFORM_ACME_EU_*`;
        two such platforms would share one key and URL, so the ambiguity stops the process.
        Without a list the ids are not known here: workers pin each overridden key to the first
        id that uses it (`eventfwd.core.overrides`).
        """
        if self.allowed_platforms is None:
            return
        owners: dict[str, str] = {}
        for platform_id in sorted(self.allowed_platforms):
            key = platform_env_key(platform_id)
            if key in owners:
                raise ConfigError(
                    f"EVENTFWD_ALLOWED_PLATFORMS: {owners[key]!r} and {platform_id!r} would share "
                    f"the settings EVENTFWD_PLATFORM_{key}_*; platform ids must differ in more "
                    "than case and the characters - . _ ~"
                )
            owners[key] = platform_id
        for key, override in self.platforms.items():
            if key not in owners:
                what = next(
                    name
                    for name, (attr, _) in _PLATFORM_FIELDS.items()
                    if getattr(override, attr) is not None
                )
                raise ConfigError(
                    f"EVENTFWD_PLATFORM_{key}_{what} is set, but no platform of "
                    "EVENTFWD_ALLOWED_PLATFORMS uses it"
                )

    def allows_platform(self, platform_id: str) -> bool:
        """True when events for `platform_id` may be enqueued and sent (the allow-list)."""
        return self.allowed_platforms is None or platform_id in self.allowed_platforms

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with `changes` applied (validated like the original)."""
        settings = dataclasses.replace(self, **changes)
        settings._check()
        return settings

    def platform(self, platform_id: str) -> PlatformConfig:
        """Resolve base URL, key and rate limit for one platform (override, else global)."""
        override = PlatformOverride()
        if self.allows_platform(platform_id):  # a look-alike id never borrows an override
            override = self.platforms.get(platform_env_key(platform_id), override)
        return PlatformConfig(
            platform_id=platform_id,
            base_url=override.base_url or self.moloco_base_url,
            api_key=override.api_key or self.moloco_api_key,
            rate_limit_per_s=override.rate_limit_per_s or self.rate_limit_per_s,
        )

    def require_delivery_config(self) -> None:
        """Fail at worker start when no Moloco endpoint or key is configured at all."""
        if not self.moloco_base_url and not any(o.base_url for o in self.platforms.values()):
            raise ConfigError("EVENTFWD_MOLOCO_BASE_URL is not set (the worker needs Moloco's URL)")
        if not self.moloco_api_key and not any(o.api_key for o in self.platforms.values()):
            raise ConfigError("EVENTFWD_MOLOCO_API_KEY is not set (the worker needs an API key)")

    def __repr__(self) -> str:
        return f"Settings({self.redacted()})"

    def redacted(self) -> dict[str, Any]:
        """Return the settings as a dict fit to print: API keys and pepper only as set/unset."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("moloco_api_key", "hash_pepper", "web_secret"):
                value = "<set>" if value else None
            elif f.name == "platforms":
                value = {
                    k: {
                        "base_url": o.base_url,
                        "api_key": "<set>" if o.api_key else None,
                        "rate_limit_per_s": o.rate_limit_per_s,
                    }
                    for k, o in value.items()
                }
            elif f.name == "redis_url":
                value = redact_url(value)
            out[f.name] = value
        return out


def read_dotenv(path: Path) -> dict[str, str]:
    """Read a `.env` file (only `EVENTFWD_` keys and `SENTRY_DSN`), as python-dotenv parses it.

    python-dotenv, not a parser of our own: `KEY=value  # note` is the value and a comment, as in
    Docker Compose and every other tool that reads the same file. No `${VAR}` expansion: an API
    key or a password is taken as written.
    """
    if not path.is_file():
        return {}
    values = dotenv_values(path, interpolate=False)
    return {
        key: value
        for key, value in values.items()
        if value is not None and (key.startswith(PREFIX) or key == "SENTRY_DSN")
    }
