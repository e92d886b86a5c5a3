"""Sentry for the worker and beat: what is reported, how it is grouped, and what never leaves.

Reported: unexpected task exceptions (sentry-sdk's Celery integration; Retry, Ignore and Reject
are control flow, not errors), one warning per dead letter grouped by (platform, reason, status),
circuit open (error) and close (info), and Crons check-ins for beat's entries. Retries are not
reported. Never sent: API keys, event bodies, user identifiers (see `Scrubber`).

Without a DSN (`SENTRY_DSN` in the environment, else in `./.env`) `init_sentry` does nothing and
the `report_*` hooks return at once, so callers use them unconditionally.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import sentry_sdk
from celery.schedules import schedule as interval_schedule
from sentry_sdk.crons import MonitorStatus, capture_checkin

from eventfwd.core.connection import sentinel_config
from eventfwd.core.errors import ConfigError
from eventfwd.core.settings import Settings, read_dotenv

log = logging.getLogger(__name__)

FILTERED = "[Filtered]"
TAG_VALUE_MAX_CHARS = 200  # Sentry's limit for a tag value
CONTEXT_MESSAGE_MAX_CHARS = 500
# Keys shorter than this are only scrubbed as whole tokens, so a toy key like "k" cannot
# shred every word of an event.
SHORT_SECRET_CHARS = 8
TAG_PLATFORM = "eventfwd.platform"
TAG_REASON = "eventfwd.reason"
TAG_STATUS = "eventfwd.status"
TAG_EVENT_ID = "eventfwd.event_id"
TAG_MESSAGE = "eventfwd.moloco_message"
TAG_COMPONENT = "eventfwd.component"
# Crons: check-in cadence is whole minutes; a monitor waits this long before "missed".
CHECKIN_MARGIN_MIN = 2

# Compared after squashing (lower case, letters and digits only): `userId`, `User-ID`, `user_id`.
_IDENTIFIER_KEYS = (
    "user_id", "persistent_id", "custom_id", "ip", "ua", "advertising_id", "unique_device_id",
    "session_id", "ip_address", "client_ip", "remote_addr", "user_agent",
)  # fmt: skip
_SECRET_KEYS = (
    "x_api_key", "api_key", "moloco_api_key", "authorization", "password", "sentinel_password",
    "hash_pepper",
)  # fmt: skip
_SENSITIVE_SQUASHED = frozenset(
    re.sub(r"[^a-z0-9]", "", k) for k in _IDENTIFIER_KEYS + _SECRET_KEYS
)
# `name: value`, `name=value`, `"name": "value"` inside free text (log lines, echoed JSON), and
# `\"name\": \"value\"`: JSON inside a JSON string, its quotes escaped (once or more).
_SENSITIVE_IN_TEXT = re.compile(
    r"""(?P<key>(?:\\*["'])?\b(?:"""
    + "|".join(k.replace("_", "[-_ ]?") for k in _IDENTIFIER_KEYS + _SECRET_KEYS)
    + r""")\b(?:\\*["'])?\s*[:=]\s*)"""
    + r"""(?P<value>\[Filtered\]|(?P<esc>\\+)"(?:(?!(?P=esc)").)*(?P=esc)"|"[^"]*"|'[^']*'"""
    + r"""|[^\s,;&}\])\\]+)""",
    re.IGNORECASE,
)
_QUOTE = re.compile(r"""\\*["']""")
# Celery task arguments carry event ids only; anything else in them is dropped.
_ID_SHAPED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:~-]{0,127}")
_ID_KWARGS = frozenset({"event_id", "event_ids"})
# Log lines whose event a structured report replaces (they stay breadcrumbs).
_REPLACED_LOG_LINES = (("worker.delivery", "platform=%s circuit opened"),)


def _squash(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def _sensitive_key(key: object) -> bool:
    return isinstance(key, str) and _squash(key) in _SENSITIVE_SQUASHED


class Scrubber:
    """Remove secrets and user identifiers from an event, a transaction or a breadcrumb."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        unique = sorted({s for s in secrets if s}, key=len, reverse=True)
        parts = [
            re.escape(s) if len(s) >= SHORT_SECRET_CHARS else rf"(?<![\w-]){re.escape(s)}(?![\w-])"
            for s in unique
        ]
        self._secrets = re.compile("|".join(parts)) if parts else None

    @classmethod
    def from_settings(cls, settings: Settings) -> Scrubber:
        """Scrub the global and every per-platform API key, the hash pepper, the Redis password."""
        keys = [settings.moloco_api_key, *(o.api_key for o in settings.platforms.values())]
        keys.append(getattr(settings, "hash_pepper", None))
        keys.extend(_redis_secrets(settings.redis_url))
        return cls(keys)

    def text(self, value: str) -> str:
        """Scrub one string."""
        if self._secrets is not None:
            value = self._secrets.sub(FILTERED, value)
        return _SENSITIVE_IN_TEXT.sub(_filtered_value, value)

    def value(self, value: Any) -> Any:
        """Scrub any JSON-like value, at every depth."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: FILTERED if _sensitive_key(k) else self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            # [name, value] pairs: how Sentry's request interface may hold headers.
            if len(value) == 2 and _sensitive_key(value[0]):
                return [value[0], FILTERED]
            return [self.value(v) for v in value]
        return value

    def event(self, event: Any, hint: Any = None) -> Any:
        """Scrub an event (`before_send`, `before_send_transaction`)."""
        event.pop("user", None)
        extra = event.get("extra")
        if isinstance(extra, dict) and isinstance(extra.get("celery-job"), dict):
            job = extra["celery-job"]
            if "args" in job:
                job["args"] = _ids_only(job["args"])
            if "kwargs" in job:
                job["kwargs"] = _task_kwargs(job["kwargs"])
        return self.value(event)

    def breadcrumb(self, crumb: Any, hint: Any = None) -> Any:
        """Scrub a breadcrumb (`before_breadcrumb`)."""
        return self.value(crumb)

    def before_send(self, event: Any, hint: Any) -> Any:
        """Drop events that a structured report replaces; scrub the rest."""
        record = (hint or {}).get("log_record")
        if record is not None and any(
            record.name == name and str(record.msg).startswith(prefix)
            for name, prefix in _REPLACED_LOG_LINES
        ):
            return None
        return self.event(event, hint)


def _redis_secrets(url: str) -> list[str | None]:
    """The Redis URL's passwords as written (percent-encoded) and as sent (decoded)."""
    found: list[str | None] = []
    with contextlib.suppress(ValueError, ConfigError):
        if url.startswith("sentinel://"):
            cfg = sentinel_config(url)
            found += [cfg.password, cfg.sentinel_password]
            found.append(cfg.userinfo.partition(":")[2] or None)
            found += re.findall(r"sentinel_password=([^&;#]+)", url)  # as written
        else:
            raw = urlsplit(url).password
            found += [raw, unquote(raw) if raw else None]
    return found


def _filtered_value(match: re.Match[str]) -> str:
    quoted = _QUOTE.match(match.group("value"))
    quote = quoted.group() if quoted else ""
    return f"{match.group('key')}{quote}{FILTERED}{quote}"


def _ids_only(value: Any) -> Any:
    """Keep id-shaped strings, also inside lists; filter everything else (dicts are bodies)."""
    if isinstance(value, str):
        return value if _ID_SHAPED.fullmatch(value) else FILTERED
    if isinstance(value, list | tuple):
        return [_ids_only(v) for v in value]
    return FILTERED


def _task_kwargs(value: Any) -> Any:
    """Keep only the id-carrying keyword arguments, and only their ids."""
    if not isinstance(value, dict):
        return _ids_only(value)
    return {k: _ids_only(v) if k in _ID_KWARGS else FILTERED for k, v in value.items()}


# -- log lines ------------------------------------------------------------------------------

_LOG_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class EscapeControlCharacters(logging.Filter):
    """Write control characters of a log message as escapes: no forged lines, no escape codes.

    Ids are refused with control characters at enqueue and import, but a record written by an
    older version, or a message quoted from Moloco, may still carry one into a log line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _LOG_CONTROL.search(message):
            record.msg = _LOG_CONTROL.sub(
                lambda m: m.group().encode("unicode_escape").decode("ascii"), message
            )
            record.args = None
        return True


def install_log_escaping(*_: Any, **__: Any) -> None:
    """Add `EscapeControlCharacters` to every handler of the root logger (once each)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, EscapeControlCharacters) for f in handler.filters):
            handler.addFilter(EscapeControlCharacters())


# -- set-up ---------------------------------------------------------------------------------


def sentry_dsn(environ: dict[str, str] | None = None, dotenv: Path | None = None) -> str:
    """`SENTRY_DSN` from the environment (set but empty means off), else from `./.env`."""
    environ = dict(os.environ) if environ is None else environ
    if "SENTRY_DSN" in environ:
        return environ["SENTRY_DSN"].strip()
    return read_dotenv(dotenv or Path.cwd() / ".env").get("SENTRY_DSN", "").strip()


def init_sentry(
    settings: Settings,
    *,
    component: str,
    transport: object | None = None,
    dsn: str | None = None,
) -> bool:
    """Start Sentry for this process when a DSN (or a test transport) is given; say whether."""
    dsn = sentry_dsn() if dsn is None else dsn.strip()
    if not dsn and transport is None:
        return False
    scrubber = Scrubber.from_settings(settings)
    with warnings.catch_warnings():
        # sentry-sdk 2.7x deprecates send_default_pii for data_collection, which older 2.x
        # (allowed by our pin) reject; False means the same in both.
        warnings.filterwarnings("ignore", "The send_default_pii option", DeprecationWarning)
        _init_sdk(dsn, transport, component, scrubber)
    sentry_sdk.get_global_scope().set_tag(TAG_COMPONENT, component)
    log.info("Sentry reporting on (%s)", component)
    return True


def _init_sdk(dsn: str, transport: object | None, component: str, scrubber: Scrubber) -> None:
    # Imported here so that processes without Sentry never pay for the integrations.
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration

    sentry_sdk.init(
        dsn=dsn or None,
        transport=cast(Any, transport),
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        # Never add sentry-trace/baggage headers to requests to Moloco.
        trace_propagation_targets=[],
        # Only what we chose: no Redis or HTTP-client auto-instrumentation.
        auto_enabling_integrations=False,
        integrations=[
            # In beat, BeatMonitor makes the check-ins: the integration cannot monitor
            # entries under a minute (the pump) and would monitor Celery's own cleanup.
            CeleryIntegration(
                monitor_beat_tasks=True,
                exclude_beat_tasks=[".*"] if component == "beat" else None,
            ),
            LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
        ],
        before_send=scrubber.before_send,
        before_send_transaction=scrubber.event,
        before_breadcrumb=scrubber.breadcrumb,
    )


def _active() -> bool:
    return sentry_sdk.get_client().is_active()


# -- reports --------------------------------------------------------------------------------


def dead_letter_fingerprint(platform_id: str, reason: str, status: str) -> list[str]:
    """One Sentry issue per kind of dead letter, however many events die that way."""
    return ["eventfwd", "dead-letter", platform_id, reason, status or "none"]


def circuit_fingerprint(platform_id: str, opened: bool, reason: str) -> list[str]:
    """One issue per platform and cause for opening; one per platform for closing."""
    if opened:
        return ["eventfwd", "circuit-opened", platform_id, reason]
    return ["eventfwd", "circuit-closed", platform_id]


def report_dead_letter(
    *, event_id: str, platform_id: str, reason: str, status: str, message: str
) -> None:
    """Report one dead letter as a warning, grouped by platform, reason and status."""
    if not _active():
        return
    shown_status = status or "none"
    _capture(
        f"dead letter: {reason} (HTTP {shown_status}) on platform {platform_id}",
        level="warning",
        fingerprint=dead_letter_fingerprint(platform_id, reason, status),
        tags={TAG_EVENT_ID: event_id, **_tags(platform_id, reason, status, message)},
        context=(
            "dead_letter",
            {
                "event_id": event_id,
                "platform_id": platform_id,
                "reason": reason,
                "status": shown_status,
                "moloco_message": message[:CONTEXT_MESSAGE_MAX_CHARS],
            },
        ),
    )


def report_circuit(
    *, platform_id: str, opened: bool, reason: str, status: str = "", message: str = ""
) -> None:
    """Report a platform's circuit opening (error) or closing (info)."""
    if not _active():
        return
    what = "opened" if opened else "closed"
    _capture(
        f"circuit {what} on platform {platform_id}" + (f": {reason}" if opened else ""),
        level="error" if opened else "info",
        fingerprint=circuit_fingerprint(platform_id, opened, reason),
        tags=_tags(platform_id, reason, status, message),
        context=(
            "circuit",
            {
                "platform_id": platform_id,
                "state": "open" if opened else "closed",
                "reason": reason,
                "status": status or "none",
                "moloco_message": message[:CONTEXT_MESSAGE_MAX_CHARS],
            },
        ),
    )


def report_operator_action(*, action: str, by: str, count: int, what: str, source: str) -> None:
    """Report an operator's action (replay, purge, pause, ...) as info, grouped by action."""
    if not _active():
        return
    _capture(
        f"operator: {action} of {count} by {by} ({source})",
        level="info",
        fingerprint=["eventfwd", "operator", action],
        tags={"eventfwd.action": action, "eventfwd.source": source},
        context=(
            "operator_action",
            {"action": action, "by": by, "count": count, "what": what[:CONTEXT_MESSAGE_MAX_CHARS]},
        ),
    )


def _tags(platform_id: str, reason: str, status: str, message: str) -> dict[str, str]:
    tags = {TAG_PLATFORM: platform_id, TAG_REASON: reason, TAG_STATUS: status or "none"}
    if message:
        tags[TAG_MESSAGE] = " ".join(message.split())[:TAG_VALUE_MAX_CHARS]
    return tags


def _capture(
    message: str,
    *,
    level: str,
    fingerprint: list[str],
    tags: dict[str, str],
    context: tuple[str, dict[str, Any]],
) -> None:
    # A report must never break the delivery that triggered it.
    try:
        sentry_sdk.capture_message(
            message,
            level=cast(Any, level),
            fingerprint=fingerprint,
            tags=tags,
            contexts={context[0]: context[1]},
        )
    except Exception:
        log.warning("could not report to Sentry: %s", message, exc_info=True)


# -- beat: Crons check-ins --------------------------------------------------------------------


class BeatMonitor:
    """Crons check-ins for beat's entries, at most one per whole minute per entry.

    Beat sends `in_progress` when it publishes a sampled run; the Celery integration in the
    worker sends `ok` (or `error`) with the same check-in id when the task ends. A run whose
    message expires unconsumed times out after `max_runtime_min`, which is the alert we want.
    """

    def __init__(self, names: Collection[str], *, slug_prefix: str, max_runtime_min: int) -> None:
        self.names = frozenset(names)
        self.slug_prefix = slug_prefix
        self.max_runtime_min = max_runtime_min
        self._last_s: dict[str, float] = {}

    def slug(self, name: str) -> str:
        return re.sub(r"[^a-z0-9_-]", "-", f"{self.slug_prefix}-{name}".lower())[:50]

    def install(self, scheduler: Any) -> None:
        """Wrap this scheduler's `apply_entry` (the instance only, not the class)."""
        original: Callable[..., Any] = scheduler.apply_entry

        def apply_entry(entry: Any, producer: Any = None) -> Any:
            try:
                self.prepare(entry, time.monotonic())
            except Exception:  # monitoring must never stop the schedule
                log.warning("could not prepare a Crons check-in for %s", entry.name, exc_info=True)
            return original(entry, producer=producer)

        scheduler.apply_entry = apply_entry

    def prepare(self, entry: Any, now_s: float) -> str | None:
        """Put check-in headers on this run of `entry` when one is due; return the id."""
        headers = {
            k: v
            for k, v in (entry.options.get("headers") or {}).items()
            if not k.startswith("sentry-monitor-")
        }
        entry.options["headers"] = headers
        if entry.name not in self.names or not isinstance(entry.schedule, interval_schedule):
            return None
        interval_s = float(entry.schedule.seconds)
        every_min = max(1, math.ceil(interval_s / 60))
        last_s = self._last_s.get(entry.name)
        # Sample so the check-ins are `every_min` apart, never later than that.
        if last_s is not None and now_s - last_s < every_min * 60 - interval_s:
            return None
        config: dict[str, Any] = {
            "schedule": {"type": "interval", "value": every_min, "unit": "minute"},
            "checkin_margin": CHECKIN_MARGIN_MIN,
            "max_runtime": self.max_runtime_min,
            "timezone": "UTC",
        }
        slug = self.slug(entry.name)
        check_in_id = capture_checkin(
            monitor_slug=slug, monitor_config=cast(Any, config), status=MonitorStatus.IN_PROGRESS
        )
        if check_in_id is None:
            return None
        self._last_s[entry.name] = now_s
        headers.update(
            {
                "sentry-monitor-slug": slug,
                "sentry-monitor-config": config,
                "sentry-monitor-check-in-id": check_in_id,
            }
        )
        return check_in_id


def start_beat_monitoring(sender: Any = None, **_: Any) -> None:
    """`beat_init` handler: start Sentry in beat and monitor eventfwd's own entries."""
    app = sender.app
    settings: Settings = app.conf.eventfwd_settings
    if not init_sentry(settings, component="beat"):
        return
    hard_limit_s = float(app.conf.task_time_limit or 60)
    BeatMonitor(
        app.conf.beat_schedule,
        slug_prefix=settings.queue,
        max_runtime_min=math.ceil(hard_limit_s / 60) + 1,
    ).install(sender.scheduler)
