"""Check a user event against Moloco's schema and rules, and build the exact body to POST.

`validate_event` reports every broken rule at once, as `InvalidEvent`. Most events
take the fast path: `schema.fast` checks and serialises an event of the common shape (only
Moloco's keys, values already of their wire type) in one pydantic-core pass, then the rules that
join fields run on its values. Any other event, and any event the fast path doubts, takes the
full check, which alone words errors. It runs three passes over the event: `schema.clean`
vets keys and drops nulls, the pydantic models of `schema.models` check each field, and
`_rule_errors` below checks the rules that join fields (these run on the raw event so they report
even when a field failed). The wire form is the model's dump: nulls stripped, snake_case keys in
schema order, unknown keys copied as given, `timestamp` as a decimal string and `track_id`
renamed `decision_track_id`. Both paths write the same body for an event the fast path takes.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from eventfwd.core.errors import FieldError, InvalidEvent
from eventfwd.core.schema import fast as schema_fast
from eventfwd.core.schema.clean import LEVELS, MAX_DEPTH, clean
from eventfwd.core.schema.models import (
    CONTROL_CHARS,
    EVENT_TYPES,
    MAX_FUTURE_MS,
    MAX_ID_CHARS,
    Event,
    field_errors,
    kind,
    new_event_id,
)

__all__ = [
    "MAX_EVENT_BYTES",
    "ValidEvent",
    "check_stored",
    "validate_event",
    "validate_events",
    "validate_platform_id",
]

MAX_EVENT_BYTES = 64 * 1024
# How deep the size guard looks: below the pass-through check's own limit (which names the
# path), so a cycle or a deep nest costs the guard a bounded walk and the full check refuses it.
GUARD_MAX_DEPTH = MAX_DEPTH + 8

ITEM_EVENT_TYPES = frozenset({"ITEM_PAGE_VIEW", "ADD_TO_CART", "ADD_TO_WISHLIST", "PURCHASE"})
_EVENT_TYPE_SET = frozenset(EVENT_TYPES)
_PLATFORM_ID = re.compile(r"[A-Za-z0-9._~-]+")
_EVENT = LEVELS["event"]


@dataclass(frozen=True, slots=True)
class ValidEvent:
    """An event that passed every rule: its id, the body to store and POST, its epoch ms."""

    id: str
    body: str
    event_ms: int

    @property
    def wire(self) -> dict[str, Any]:
        """The body as data (parsed on each access: the producer needs only the body)."""
        wire: dict[str, Any] = json.loads(self.body)
        return wire


def validate_event(
    event: Mapping[str, Any], *, strict_fields: bool = False, now_ms: int | None = None
) -> ValidEvent:
    """Check one event and build its wire body; raise InvalidEvent carrying every FieldError.

    `strict_fields` refuses every key Moloco's schema does not name (typos are refused always).
    `now_ms` is the clock for the "not in the future" rule; it defaults to the wall clock.
    """
    if now_ms is None:
        now_ms = _wall_clock_ms()
    too_big = size_guard(event)
    if too_big is not None:
        raise InvalidEvent([too_big])
    return _fast_path(event, now_ms) or _full_check(event, strict_fields, now_ms)


def validate_events(
    events: Iterable[Mapping[str, Any]],
    *,
    strict_fields: bool = False,
    now_ms: int | None = None,
) -> list[ValidEvent]:
    """Check a batch as `validate_event` checks each event, reading the clock once for all.

    The first invalid event raises InvalidEvent with its `index` (and every error it has).
    """
    if isinstance(events, str | bytes | Mapping) or not isinstance(events, Iterable):
        raise InvalidEvent(
            [FieldError("", "type", f"events must be a list of events, got {kind(events)}")]
        )
    if now_ms is None:
        now_ms = _wall_clock_ms()
    valid: list[ValidEvent] = []
    for index, event in enumerate(events):
        try:
            valid.append(validate_event(event, strict_fields=strict_fields, now_ms=now_ms))
        except InvalidEvent as exc:
            raise InvalidEvent(exc.errors, index=index) from None
    return valid


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def size_guard(event: object) -> FieldError | None:
    """Refuse an event that is surely over the size limit, before any full walk.

    Counts a lower bound of the event's JSON size (string lengths, punctuation) and stops as
    soon as it passes `MAX_EVENT_BYTES`, so the work is bounded by the limit, not by the input:
    a million empty items or 200,000 unknown keys cost what 64 KiB costs. A lower bound never
    refuses an event the exact check after serialisation would accept.
    """
    budget = MAX_EVENT_BYTES
    stack: list[tuple[Any, int]] = [(event, 0)]
    # Leaves are counted where they are found (most nodes are leaves: this keeps the guard at
    # a few microseconds for a common event). A container's length is charged before its loop,
    # so no loop runs longer than the budget.
    while stack and budget >= 0:
        value, depth = stack.pop()
        if depth > GUARD_MAX_DEPTH:
            continue  # the full check refuses it, naming the path, and walks no deeper
        kind_ = type(value)
        if kind_ is dict or (kind_ is not list and isinstance(value, Mapping)):
            budget -= 2 + len(value)
            if budget < 0:
                break
            for key, item in value.items():
                kind_ = type(item)
                if kind_ is str:
                    budget -= len(item) + 5
                elif item is None:
                    continue
                else:
                    budget -= 3
                    if kind_ is not int and kind_ is not bool and kind_ is not float:
                        stack.append((item, depth + 1))
                budget -= len(key) if type(key) is str else 1
        elif kind_ is list or kind_ is tuple or isinstance(value, list | tuple):
            budget -= 2 + len(value)
            if budget < 0:
                break
            for item in value:
                kind_ = type(item)
                if kind_ is str:
                    budget -= len(item) + 2
                elif kind_ is not int and kind_ is not bool and kind_ is not float:
                    stack.append((item, depth + 1))
        elif isinstance(value, str):
            budget -= len(value) + 2
    if budget >= 0:
        return None
    return FieldError(
        "",
        "max_size",
        f"is more than {MAX_EVENT_BYTES} bytes as JSON (counting stopped there); "
        "the limit is 64 KiB",
    )


def _fast_path(event: object, now_ms: int) -> ValidEvent | None:
    """The event checked and serialised by `eventfwd.core.schema.fast`, or None: ask the full check.

    None does not mean invalid, only "not the common shape" or "breaks a rule": the full
    check decides, and it alone words errors.
    """
    try:
        values = schema_fast.VALIDATOR.validate_python(event)
    except ValidationError:
        return None
    event_ms: int = values["timestamp"]
    if event_ms > now_ms + MAX_FUTURE_MS or _rule_errors(values):
        return None
    try:
        body = schema_fast.SERIALIZER.to_json(values, exclude_none=True)
    except PydanticSerializationError:  # a lone surrogate, which the full check names
        return None
    if len(body) > MAX_EVENT_BYTES:
        return None
    return ValidEvent(id=values["id"], body=body.decode(), event_ms=event_ms)


def _full_check(event: Mapping[str, Any], strict_fields: bool, now_ms: int) -> ValidEvent:
    """Check any input in three passes (see the module docstring), reporting every error."""
    if not isinstance(event, Mapping):
        raise InvalidEvent(
            [
                FieldError(
                    "", "type", f"an event must be a mapping (a JSON object), got {kind(event)}"
                )
            ]
        )
    errors: list[FieldError] = []
    raw = clean(event, _EVENT, "", strict_fields, errors)
    _merge_track_id(raw, errors)
    if "id" not in raw:
        raw["id"] = new_event_id()
    model: Event | None = None
    try:
        model = Event.model_validate(raw, context={"now_ms": now_ms})
    except ValidationError as exc:
        errors.extend(field_errors(exc))
    errors.extend(_rule_errors(raw))
    if errors or model is None:
        size = _estimated_bytes(raw)
        if size > MAX_EVENT_BYTES:
            errors.append(_too_big(size))
        raise InvalidEvent(errors)

    wire = model.model_dump(exclude_none=True)
    wire["timestamp"] = str(model.timestamp)
    body = json.dumps(wire, separators=(",", ":"), ensure_ascii=False)
    try:
        size = len(body.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidEvent(_unencodable(wire, "")) from None
    if size > MAX_EVENT_BYTES:
        raise InvalidEvent([_too_big(size)])
    return ValidEvent(id=model.id, body=body, event_ms=model.timestamp)


def validate_platform_id(platform_id: object) -> str:
    """Return a platform id that is safe to put in the URL path, or raise InvalidEvent."""

    def refuse(rule: str, message: str) -> InvalidEvent:
        return InvalidEvent([FieldError("platform_id", rule, message)])

    if not isinstance(platform_id, str):
        raise refuse("type", f"must be a string, got {kind(platform_id)}")
    if not platform_id:
        raise refuse("required", "must not be empty")
    if len(platform_id) > MAX_ID_CHARS:
        raise refuse(
            "max_length", f"must be at most {MAX_ID_CHARS} characters, got {len(platform_id)}"
        )
    # "." and ".." match the character class but would be collapsed as URL path segments.
    if not _PLATFORM_ID.fullmatch(platform_id) or platform_id in {".", ".."}:
        raise refuse(
            "format",
            "may hold only letters, digits and . _ ~ - (it goes in the URL path), "
            f"got {platform_id!r}",
        )
    return str.__str__(platform_id)


def check_stored(event_id: object, platform_id: object, body: object) -> None:
    """Check a row before it is written to the ledger, whoever built it; raise InvalidEvent.

    `enqueue_validated` callers and spool files hand rows that did not come through
    `validate_event` in this process: their platform id reaches a URL path, their id logs and
    operators' terminals, their body Moloco. This is the cheap part of the check again.
    """
    platform_id = validate_platform_id(platform_id)
    errors: list[FieldError] = []
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= MAX_ID_CHARS:
        errors.append(FieldError("id", "type", f"must be 1-{MAX_ID_CHARS} characters of text"))
    elif CONTROL_CHARS.search(event_id):
        errors.append(FieldError("id", "control_characters", "must not hold control characters"))
    if not isinstance(body, str) or not (body.startswith("{") and body.endswith("}")):
        errors.append(FieldError("", "type", "the body must be a JSON object's text"))
    elif len(body) > MAX_EVENT_BYTES:
        errors.append(_too_big(len(body)))
    if errors:
        raise InvalidEvent(errors)


def _merge_track_id(raw: dict[str, Any], errors: list[FieldError]) -> None:
    """Send an upstream `track_id` as `decision_track_id`, refusing two different values."""
    track_id = raw.pop("track_id", None)
    if track_id is None:
        return
    if not isinstance(track_id, str):
        errors.append(FieldError("track_id", "type", f"must be a string, got {kind(track_id)}"))
        return
    decision_track_id = raw.get("decision_track_id")
    if decision_track_id is None:
        raw["decision_track_id"] = track_id
    elif isinstance(decision_track_id, str) and decision_track_id != track_id:
        errors.append(
            FieldError(
                "track_id",
                "alias_conflict",
                f"track_id {track_id!r} and decision_track_id {decision_track_id!r} differ; "
                "track_id is another name for decision_track_id, send one of them",
            )
        )


def _is_set(value: object) -> bool:
    # Moloco's server is protobuf: an empty string is the same as an absent field.
    return value is not None and value != ""


def _is_identifier(value: object) -> bool:
    # Blank counts as unset too: "   " sent for every user is one shared identifier to Moloco.
    return value is not None and (not isinstance(value, str) or value.strip() != "")


def _rule_errors(raw: dict[str, Any]) -> list[FieldError]:
    """Rules that join fields; a value of the wrong type counts as set (it is reported already).

    `raw` is the cleaned event (no nulls) or the fast path's values (nulls for absent keys).
    """
    found: list[FieldError] = []
    event_id = raw.get("id")
    if isinstance(event_id, str) and CONTROL_CHARS.search(event_id):
        found.append(
            FieldError(
                "id",
                "control_characters",
                "must not hold control characters or line breaks (ids are written to logs "
                "and shown to operators)",
            )
        )
    device = raw.get("device")
    device_fields = device if isinstance(device, dict) else {}
    if not (
        _is_identifier(raw.get("user_id"))
        or _is_identifier(raw.get("custom_id"))
        or _is_identifier(device_fields.get("persistent_id"))
    ):
        found.append(
            FieldError(
                "",
                "identifier_required",
                "needs at least one identifier: user_id, device.persistent_id or custom_id "
                "(empty or blank strings do not count); Moloco answers 'no available valid "
                "identifier to construct Moloco advertising ID'",
            )
        )

    items = raw.get("items")
    if isinstance(items, list):
        for index, item in enumerate(items):
            if isinstance(item, dict) and not (
                _is_set(item.get("id")) or _is_set(item.get("item_group_id"))
            ):
                found.append(
                    FieldError(
                        f"items.{index}",
                        "item_id_required",
                        "an item needs id or item_group_id (Moloco: 'invalid item: either id "
                        "or item_group_id must be set')",
                    )
                )

    event_type = raw.get("event_type")
    if not (isinstance(event_type, str) and event_type in _EVENT_TYPE_SET):
        event_type = None  # its own error is reported; the rules below depend on it
    if event_type in ITEM_EVENT_TYPES and (items is None or items == []):
        found.append(
            FieldError("items", "items_required", f"{event_type} needs a non-empty items list")
        )
    if event_type == "PURCHASE" and raw.get("revenue") is None:
        found.append(FieldError("revenue", "revenue_required", "PURCHASE needs revenue"))
    if event_type == "SEARCH" and not _is_set(raw.get("search_query")):
        found.append(
            FieldError(
                "search_query", "search_query_required", "SEARCH needs a non-empty search_query"
            )
        )
    if event_type == "PAGE_VIEW" and not _is_set(raw.get("page_id")):
        found.append(
            FieldError("page_id", "page_id_required", "PAGE_VIEW needs a non-empty page_id")
        )

    if raw.get("channel_type") == "APP" and (device is None or isinstance(device, dict)):
        os = device_fields.get("os")
        if os is None or (
            isinstance(os, str) and "ios" not in os.lower() and "android" not in os.lower()
        ):
            found.append(
                FieldError(
                    "device.os",
                    "app_device_os",
                    f"the APP channel needs device.os containing 'ios' or 'android', got {os!r}",
                )
            )
    return found


def _estimated_bytes(raw: dict[str, Any]) -> int:
    """Size of a refused event, so that max_size is reported with its other errors."""
    try:
        text = json.dumps(raw, separators=(",", ":"), ensure_ascii=False, default=str)
    except (ValueError, RecursionError):  # a cycle or deep nesting, already refused as a type
        return 0
    return len(text.encode("utf-8", "surrogatepass"))


def _too_big(size: int) -> FieldError:
    return FieldError(
        "",
        "max_size",
        f"is {size} bytes as JSON; the limit is {MAX_EVENT_BYTES} bytes (64 KiB)",
    )


def _unencodable(value: Any, path: str) -> list[FieldError]:
    """Find the strings UTF-8 cannot carry (lone surrogates), to name them."""
    found: list[FieldError] = []
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            found.append(
                FieldError(path, "encoding", "holds a lone surrogate, which UTF-8 cannot carry")
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else key
            found.extend(_unencodable(key, sub) + _unencodable(item, sub))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_unencodable(item, f"{path}.{index}" if path else str(index)))
    return found
