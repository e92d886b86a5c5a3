"""The first walk over a raw event: drop nulls, vet every key, copy pass-through values as JSON.

Moloco accepts keys it does not know and most likely drops them silently, so a misspelt key
(`serach_query`, `userId`) would lose data without a word. Each unknown key is compared with the
known keys of its level (event, device, item, money) after normalising camelCase, kebab-case and
case to snake_case; an exact normalised match, a match without underscores, or a difflib near
miss is refused as a typo. Anything else passes through unchanged (or is refused in strict mode).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from eventfwd.core.errors import FieldError
from eventfwd.core.schema.models import CONTROL_CHARS, Event, EventDevice, EventItem, Money, kind

# Tuned on lists of real typos and real extra fields (see tests/unit/test_schema.py): typos score
# 0.88 and up (`item` for `items`), extras must stay below: `device.sdk_version` scores 0.857
# against `os_version`, `tracking_id` 0.84 against `track_id`, `session` 0.82 against `session_id`.
TYPO_CUTOFF = 0.87
# difflib scores short names too generously (`uid` vs `id` is 0.8); short ones need an exact match.
MIN_FUZZY_CHARS = 4
# Real fields that score above the cutoff against a Moloco key but are not typos of it.
REAL_EXTRA_FIELDS = frozenset({"customer_id"})
MAX_DEPTH = 32
# Longest field name taken at any level: Moloco's own are under 30 characters.
MAX_KEY_CHARS = 128
# Fields Moloco does not name, per object: each costs a typo check (difflib), so a hostile
# event of thousands would cost tens of milliseconds; real events carry a handful.
MAX_UNKNOWN_FIELDS = 64

_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_SEPARATORS = re.compile(r"[\s.\-]+")


@dataclass(frozen=True)
class Level:
    """The known keys of one object of the schema and where its nested objects lead."""

    name: str
    known: frozenset[str]
    objects: dict[str, str] = field(default_factory=dict)  # key -> level name of a nested object
    lists: dict[str, str] = field(default_factory=dict)  # key -> level name of each list element
    # keys that belong to another level: normalised key -> what to suggest (already quoted)
    misplaced: dict[str, str] = field(default_factory=dict)


LEVELS = {
    "event": Level(
        "event",
        frozenset(Event.model_fields) | {"track_id"},
        objects={"device": "device", "revenue": "money", "shipping_charge": "money"},
        lists={"items": "item"},
        misplaced={
            name: f"'device.{name}'"
            for name in (
                "persistent_id",
                "unique_device_id",
                "advertising_id",
                "os",
                "os_version",
                "ua",
            )
        },
    ),
    "device": Level(
        "device",
        frozenset(EventDevice.model_fields),
        misplaced={
            name: f"'{name}' at the event level, not inside device"
            for name in ("user_id", "custom_id", "session_id")
        },
    ),
    "item": Level(
        "item",
        frozenset(EventItem.model_fields),
        objects={"price": "money", "price_seller": "money"},
    ),
    "money": Level("money", frozenset(Money.model_fields)),
}


def normalise(key: str) -> str:
    """Spell a key the snake_case way: `userId`, `User-ID`, `user id` all become `user_id`."""
    snake = _SEPARATORS.sub("_", _CAMEL.sub(r"\1_\2", key))
    return snake.strip("_").lower()


@lru_cache(maxsize=4096)
def suggestion(level_name: str, key: str) -> str | None:
    """The quoted key `key` most likely meant at this level, or None when it looks deliberate."""
    level = LEVELS[level_name]
    if key in REAL_EXTRA_FIELDS:
        return None
    snake = normalise(key)
    if snake in level.misplaced:
        return level.misplaced[snake]
    if snake in level.known:
        return f"'{snake}'"
    squashed = snake.replace("_", "")
    for name in level.known:
        if name.replace("_", "") == squashed:
            return f"'{name}'"
    if len(snake) < MIN_FUZZY_CHARS:
        return None
    candidates = [name for name in level.known if len(name) >= MIN_FUZZY_CHARS]
    close = difflib.get_close_matches(snake, candidates, n=1, cutoff=TYPO_CUTOFF)
    return f"'{close[0]}'" if close else None


def shown_key(key: str) -> str:
    """`key` fit for an error path: escaped when UTF-8 cannot carry it or it holds controls.

    Paths go into JSON answers and terminals: a lone surrogate would make the answer itself fail
    to encode (a 500 instead of a 422), a control character would reach the reader raw.
    """
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return key.encode("unicode_escape").decode("ascii")
    return key.encode("unicode_escape").decode("ascii") if CONTROL_CHARS.search(key) else key


def _unencodable_key(key: str) -> bool:
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _join(prefix: str, key: object) -> str:
    if isinstance(key, str):
        key = shown_key(key)
    return f"{prefix}.{key}" if prefix else str(key)


def clean(
    obj: Mapping[Any, Any],
    level: Level,
    prefix: str,
    strict: bool,
    errors: list[FieldError],
) -> dict[str, Any]:
    """Copy `obj` without nulls, vetting keys; known values are left for the models to check."""
    out: dict[str, Any] = {}
    unknown = 0
    for key, value in obj.items():
        if value is None:
            continue
        if type(key) is not str:
            errors.append(
                FieldError(
                    _join(prefix, key), "type", f"field names must be strings, got {kind(key)}"
                )
            )
            continue
        if len(key) > MAX_KEY_CHARS:
            # Refused before the typo check: its cache must not keep attacker-sized keys.
            errors.append(
                FieldError(
                    _join(prefix, key[:32] + "..."),
                    "max_length",
                    f"field names are at most {MAX_KEY_CHARS} characters, got {len(key)}",
                )
            )
            continue
        path = _join(prefix, key)
        if _unencodable_key(key):
            errors.append(_surrogate_key(path))
            continue
        if key in level.known:
            if key in level.objects and isinstance(value, Mapping):
                value = clean(value, LEVELS[level.objects[key]], path, strict, errors)
            elif key in level.lists and isinstance(value, list | tuple):
                element = LEVELS[level.lists[key]]
                value = [
                    clean(v, element, f"{path}.{i}", strict, errors)
                    if isinstance(v, Mapping)
                    else v
                    for i, v in enumerate(value)
                ]
            out[key] = value
            continue
        unknown += 1
        if unknown > MAX_UNKNOWN_FIELDS:
            if unknown == MAX_UNKNOWN_FIELDS + 1:
                errors.append(
                    FieldError(
                        prefix,
                        "max_unknown_fields",
                        f"holds more than {MAX_UNKNOWN_FIELDS} fields Moloco's schema does "
                        "not name; the rest were not checked",
                    )
                )
            continue
        hint = suggestion(level.name, key)
        if hint is not None:
            errors.append(
                FieldError(
                    path, "unknown_field_typo", f"unknown field {key!r}: did you mean {hint}?"
                )
            )
        elif strict:
            errors.append(
                FieldError(path, "unknown_field", f"unknown field {key!r} (strict_fields is on)")
            )
        else:
            out[key] = plain_json(value, path, errors, 1)
    return out


def _surrogate_key(path: str) -> FieldError:
    return FieldError(
        path, "encoding", "the field name holds a lone surrogate, which UTF-8 cannot carry"
    )


def plain_json(value: Any, path: str, errors: list[FieldError], depth: int) -> Any:
    """Copy a pass-through value as plain JSON data: nulls dropped, tuples as lists, no NaN."""
    if type(value) is str or type(value) is int or type(value) is bool:
        return value
    if depth > MAX_DEPTH:
        errors.append(FieldError(path, "max_depth", f"is nested more than {MAX_DEPTH} levels deep"))
        return None
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if item is None:
                continue
            if type(key) is not str:
                errors.append(
                    FieldError(
                        _join(path, key), "type", f"field names must be strings, got {kind(key)}"
                    )
                )
                continue
            if _unencodable_key(key):
                errors.append(_surrogate_key(_join(path, key)))
                continue
            out[key] = plain_json(item, _join(path, key), errors, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [
            plain_json(item, f"{path}.{i}", errors, depth + 1)
            for i, item in enumerate(value)
            if item is not None
        ]
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        errors.append(FieldError(path, "finite_number", f"must be a finite number, got {value!r}"))
        return None
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    errors.append(
        FieldError(
            path,
            "type",
            f"must be JSON data (string, number, boolean, list or object), got {kind(value)}",
        )
    )
    return None
