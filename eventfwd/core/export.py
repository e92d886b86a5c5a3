"""Dead letters as JSON lines: what `dead export`, `purge --export` and retention write, and
what `dead import` reads back (through `core/lua/import.lua`, one atomic script per batch).

A line is the object `eventfwd dead list --json` prints: id, platform_id, state, reason,
status, message, attempts, replays, dead_at, enqueued_at, event_at, replayed_at (epoch ms),
event (the body as sent to Moloco) and history (one object per attempt).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

import redis

from eventfwd.core.errors import InvalidEvent, LedgerError
from eventfwd.core.keys import Keys
from eventfwd.core.ledger import script_source
from eventfwd.core.records import DEAD_REASONS, Envelope
from eventfwd.core.schema import MAX_EVENT_BYTES, validate_event, validate_platform_id
from eventfwd.core.schema.models import CONTROL_CHARS, MAX_ID_CHARS
from eventfwd.core.schema.validate import size_guard
from eventfwd.core.settings import Settings

IMPORT_BATCH = 200
# Bounds on imported numbers: times up to the year 9999 (a `dead_at` of 1e30 crashed `dead
# show`), counts far above any real attempt or replay count.
MAX_EPOCH_MS = 253_402_300_799_999
MAX_COUNT = 1_000_000
HISTORY_MAX_CHARS = 8192  # as `add_history` in core/lua/_lib.lua keeps it

# import.lua's answer per record
SKIPPED_LIVE, IMPORTED, REPLACED, SKIPPED_DELIVERED, SKIPPED_DEAD = 0, 1, 2, 3, 4


# What a dead letter holds about a person: Moloco's identifiers and the device signals the
# integrations add. `--redact` replaces each with a digest, so a file can be shared.
PERSONAL_FIELDS: tuple[tuple[str, ...], ...] = (
    ("user_id",),
    ("custom_id",),
    ("session_id",),
    ("device", "persistent_id"),
    ("device", "advertising_id"),
    ("device", "unique_device_id"),
    ("device", "ip"),
    ("device", "ua"),
)


def open_private(path: str | os.PathLike[str]) -> IO[str]:
    """Open `path` to append, creating it readable by its owner only (dead letters are PII)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return os.fdopen(fd, "a", encoding="utf-8")


def redact(record: dict[str, Any]) -> dict[str, Any]:
    """A dead letter's dict with its personal fields replaced by `sha256:<hex>` digests.

    Unkeyed, so equal values stay equal across a file (to count users, not to name them); for
    values that could be guessed (an IP) that is pseudonymous, not anonymous.
    """
    event = record.get("event")
    if not isinstance(event, dict):
        return record
    event = json.loads(json.dumps(event))
    for path in PERSONAL_FIELDS:
        holder: Any = event
        for part in path[:-1]:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if isinstance(holder, dict) and isinstance(holder.get(path[-1]), str):
            digest = hashlib.sha256(holder[path[-1]].encode("utf-8", "surrogatepass"))
            holder[path[-1]] = f"sha256:{digest.hexdigest()}"
    return {**record, "event": event}


def dead_line(env: Envelope, *, redacted: bool = False) -> str:
    record = env.as_dict()
    return json.dumps(
        redact(record) if redacted else record, separators=(",", ":"), ensure_ascii=False
    )


def write_envelopes(out: IO[str], envelopes: Iterable[Envelope], *, sync: bool = False) -> int:
    """Write one line per envelope; with `sync`, flush to disk before returning."""
    n = 0
    for env in envelopes:
        out.write(dead_line(env) + "\n")
        n += 1
    if sync:
        out.flush()
        os.fsync(out.fileno())
    return n


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One dead letter ready for import.lua."""

    id: str
    platform_id: str
    body: str
    event_ms: int
    enqueued_ms: int
    attempts: int
    replays: int
    reason: str
    status: str
    message: str
    dead_ms: int
    history: str

    def argv(self) -> list[Any]:
        return [
            self.id,
            self.platform_id,
            self.body,
            self.event_ms,
            self.enqueued_ms,
            self.attempts,
            self.replays,
            self.reason,
            self.status,
            self.message,
            self.dead_ms,
            self.history,
        ]


def _count(
    record: Mapping[str, Any], name: str, problems: list[str], limit: int = MAX_COUNT
) -> int:
    value = record.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        problems.append(f"{name}: must be a whole number from 0 to {limit} or null")
        return 0
    return value


def _history(value: Any, problems: list[str]) -> str:
    if value is None:
        return ""
    if not isinstance(value, list) or not all(isinstance(h, dict) for h in value):
        problems.append("history: must be a list of objects")
        return ""
    text = "\n".join(json.dumps(h, separators=(",", ":")) for h in value)
    while len(text) > HISTORY_MAX_CHARS and "\n" in text:
        text = text.partition("\n")[2]
    return text


def parse_record(
    record: Any, settings: Settings, *, now_ms: int, validate: bool
) -> ImportRow | list[str]:
    """Check one exported line; return the row to import, or what is wrong with it."""
    if not isinstance(record, dict):
        return ["a dead letter must be a JSON object"]
    problems: list[str] = []
    event_id, event = record.get("id"), record.get("event")
    if not isinstance(event_id, str) or not event_id:
        problems.append("id: required, a non-empty string")
    elif len(event_id) > MAX_ID_CHARS or CONTROL_CHARS.search(event_id):
        problems.append(f"id: at most {MAX_ID_CHARS} characters, no control characters")
    try:
        platform_id = validate_platform_id(record.get("platform_id"))
    except InvalidEvent as exc:
        problems.extend(str(e) for e in exc.errors)
        platform_id = ""
    reason = record.get("reason")
    if reason not in DEAD_REASONS:
        problems.append(f"reason: must be one of {', '.join(DEAD_REASONS)}, got {reason!r}")
    status = record.get("status")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
        problems.append("status: must be an HTTP status number or null")
    message = record.get("message") or ""
    if not isinstance(message, str):
        problems.append("message: must be a string or null")
    if not isinstance(event, dict):
        problems.append("event: required, a JSON object")
        return problems
    if isinstance(event_id, str) and event.get("id", event_id) != event_id:
        problems.append(f"event.id {event.get('id')!r} differs from id {event_id!r}")
    body, event_ms = _body({**event, "id": event_id}, settings, validate, problems)
    attempts, replays = _count(record, "attempts", problems), _count(record, "replays", problems)
    dead_ms = _count(record, "dead_at", problems, MAX_EPOCH_MS) or now_ms
    enqueued_ms = _count(record, "enqueued_at", problems, MAX_EPOCH_MS) or dead_ms
    event_ms = _count(record, "event_at", problems, MAX_EPOCH_MS) or event_ms
    history = _history(record.get("history"), problems)
    if problems:
        return problems
    return ImportRow(
        id=str(event_id),
        platform_id=platform_id,
        body=body,
        event_ms=event_ms,
        enqueued_ms=enqueued_ms,
        attempts=attempts,
        replays=replays,
        reason=str(reason),
        status="" if status is None else str(status),
        message=str(message),
        dead_ms=dead_ms,
        history=history,
    )


def _body(
    event: dict[str, Any], settings: Settings, validate: bool, problems: list[str]
) -> tuple[str, int]:
    if validate:
        try:
            valid = validate_event(event, strict_fields=settings.strict_fields)
        except InvalidEvent as exc:
            problems.extend(
                f"event.{e}" if e.path else f"event: {e.message} [{e.rule}]" for e in exc.errors
            )
            return "", 0
        return valid.body, valid.event_ms
    try:
        event_ms = int(event.get("timestamp") or 0)
    except (TypeError, ValueError):
        event_ms = 0
    too_big = size_guard(event)  # an archive is still bounded: it goes back to Redis
    if too_big is not None:
        problems.append(f"event: {too_big.message} [{too_big.rule}]")
        return "", 0
    try:
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        body.encode("utf-8")
    except (RecursionError, ValueError, TypeError, UnicodeEncodeError) as exc:
        problems.append(f"event: cannot be written as JSON ({type(exc).__name__})")
        return "", 0
    if len(body) > MAX_EVENT_BYTES:
        problems.append(f"event: is {len(body)} characters as JSON, over {MAX_EVENT_BYTES}")
        return "", 0
    return body, event_ms


class Importer:
    """Write checked rows as dead letters, `IMPORT_BATCH` per atomic script call."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.keys = keys
        self._script = client.register_script(script_source("import"))

    def write(self, rows: Sequence[ImportRow], *, replace: bool) -> list[int]:
        """Import `rows`; one outcome per row (IMPORTED, REPLACED or a SKIPPED_* code)."""
        out: list[int] = []
        for start in range(0, len(rows), IMPORT_BATCH):
            chunk = rows[start : start + IMPORT_BATCH]
            args: list[Any] = [self.keys.prefix, int(replace)]
            for row in chunk:
                args.extend(row.argv())
            result = self._script(keys=[], args=args)
            if len(result) != len(chunk):
                raise LedgerError(f"import answered {len(result)} results for {len(chunk)}")
            out.extend(int(r) for r in result)
        return out
