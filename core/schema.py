"""Check a user event against Moloco's schema and rules, and build the exact body to POST.

`validate_event` reports every broken rule at once, as `core.errors.InvalidEvent`. It runs three
passes over the event: `core.schema_keys` vets keys and drops nulls, the pydantic models of
`core.schema_models` check each field, and `_rule_errors` below checks the rules that join fields
(these run on the raw event so they report even when a field failed). The wire form is the
model's dump: nulls stripped, snake_case keys in schema order, unknown keys copied as given,
`timestamp` as a decimal string and `track_id` renamed `decision_track_id`.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from core.errors import FieldError, InvalidEvent
from core.schema_keys import LEVELS, clean
from core.schema_models import EVENT_TYPES, MAX_ID_CHARS, Event, field_errors, kind

__all__ = ["MAX_EVENT_BYTES", "ValidEvent", "validate_event", "validate_platform_id"]

MAX_EVENT_BYTES = 64 * 1024

ITEM_EVENT_TYPES = frozenset({"ITEM_PAGE_VIEW", "ADD_TO_CART", "ADD_TO_WISHLIST", "PURCHASE"})
_EVENT_TYPE_SET = frozenset(EVENT_TYPES)
_PLATFORM_ID = re.compile(r"[A-Za-z0-9._~-]+")
_EVENT = LEVELS["event"]


@dataclass(frozen=True, slots=True)
class ValidEvent:
    """An event that passed every rule, with the body to store and POST."""

    id: str
    wire: dict[str, Any]
    body: str


def validate_event(
    event: Mapping[str, Any], *, strict_fields: bool = False, now_ms: int | None = None
) -> ValidEvent:
    """Check one event and build its wire body; raise InvalidEvent carrying every FieldError.

    `strict_fields` refuses every key Moloco's schema does not name (typos are refused always).
    `now_ms` is the clock for the "not in the future" rule; it defaults to the wall clock.
    """
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
        raw["id"] = str(uuid.uuid4())
    if now_ms is None:
        now_ms = time.time_ns() // 1_000_000
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
    return ValidEvent(id=model.id, wire=wire, body=body)


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


def _rule_errors(raw: dict[str, Any]) -> list[FieldError]:
    """Rules that join fields; a value of the wrong type counts as set (it is reported already)."""
    found: list[FieldError] = []
    device = raw.get("device")
    device_fields = device if isinstance(device, dict) else {}
    if not (
        _is_set(raw.get("user_id"))
        or _is_set(raw.get("custom_id"))
        or _is_set(device_fields.get("persistent_id"))
    ):
        found.append(
            FieldError(
                "",
                "identifier_required",
                "needs at least one identifier: user_id, device.persistent_id or custom_id "
                "(empty strings do not count); Moloco answers 'no available valid identifier "
                "to construct Moloco advertising ID'",
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
    if event_type == "PURCHASE" and "revenue" not in raw:
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
