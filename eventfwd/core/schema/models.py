"""Pydantic models of Moloco's v1Event, EventDevice, EventItem and Money, with their value rules.

The models check one field at a time (types, enums, lengths, numbers, timestamps); rules that join
fields (identifiers, items per event type, APP needs device.os) live in `schema.validate`, because
pydantic skips model-level validators once a field has failed and we must report every error.
Every value rule raises `PydanticCustomError(rule, message)` so that `field_errors` can turn the
pydantic error list into our `FieldError` list without rewording.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

from eventfwd.core.errors import FieldError

EVENT_TYPES = (
    "HOME",
    "LAND",
    "PAGE_VIEW",
    "ITEM_PAGE_VIEW",
    "SEARCH",
    "ADD_TO_CART",
    "ADD_TO_WISHLIST",
    "PURCHASE",
)
CHANNEL_TYPES = ("APP", "SITE", "DESKTOP_SITE", "MOBILE_SITE")
PERSONALIZATION_MODES = ("STANDARD", "METRIC_ONLY", "ID_LESS")
CURRENCIES = (
    "USD",
    "KRW",
    "JPY",
    "EUR",
    "GBP",
    "SEK",
    "INR",
    "THB",
    "IDR",
    "CNY",
    "CAD",
    "RUB",
    "BRL",
    "SGD",
    "HKD",
    "AUD",
    "PLN",
    "DKK",
    "VND",
    "MYR",
    "PHP",
    "TRY",
    "VES",
    "AED",
    "CHF",
)

MAX_ID_CHARS = 128
# C0 and C1 controls and the Unicode line breaks: text holding one could forge log lines or
# drive an operator's terminal (ids and keys are logged, and shown in `dead list`).
CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
INT32_MAX = 2**31 - 1
# 10**12 ms is September 2001, while 10**12 s is the year 33658: anything below is surely
# seconds (or far older than any event worth sending). The sink uses the same boundary.
SECONDS_BELOW_MS = 10**12
# Microsecond timestamps of this century start above 10**15; used only to word the error.
MICROSECONDS_ABOVE = 10**14
MAX_FUTURE_MS = 60_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_INT_TEXT = re.compile(r"-?[0-9]{1,19}")
_NUMBER_TEXT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_SHORT_INT_TEXT = re.compile(r"[-+]?[0-9]{1,15}")


def new_event_id() -> str:
    """The id of an event sent without one: a random UUID (version 4)."""
    return str(uuid.uuid4())


def kind(value: object) -> str:
    """Name a value's type the way a JSON sender thinks of it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _type_error(expected: str, value: object) -> PydanticCustomError:
    return PydanticCustomError("type", f"must be {expected}, got {kind(value)}")


def _enum(noun: str, allowed: tuple[str, ...], unset: str, rule: str) -> PlainValidator:
    allowed_set = frozenset(allowed)
    listing = ", ".join(allowed)

    def check(value: object) -> str:
        if type(value) is str and value in allowed_set:
            return value
        if not isinstance(value, str):
            raise _type_error("a string", value)
        if value in allowed_set:  # a str subclass such as a StrEnum member: send the plain text
            return str.__str__(value)
        if value == unset:
            message = f"{unset} is Moloco's unset default, not a real {noun}; use one of {listing}"
        elif value.strip().upper() in allowed_set:
            message = f"must be exactly {value.strip().upper()!r} (upper case), got {value!r}"
        else:
            message = f"must be one of {listing}; got {value!r}"
        raise PydanticCustomError(rule, message)

    return PlainValidator(check)


def _parse_number(text: str) -> int | float | None:
    """Read a numeric string the way a JSON number reads; None when it is not one."""
    if _SHORT_INT_TEXT.fullmatch(text):
        return int(text)
    if _NUMBER_TEXT.fullmatch(text):
        return float(text)
    return None


def _amount(value: object) -> int | float:
    number: object = value
    if isinstance(value, bool):
        raise _type_error("a number", value)
    if isinstance(value, str):
        number = _parse_number(value)
        if number is None:
            raise PydanticCustomError("finite_number", f"must be a finite number, got {value!r}")
    elif isinstance(value, Decimal):
        number = float(value) if value.is_finite() else math.nan
    elif not isinstance(value, int | float):
        raise _type_error("a number", value)
    try:
        finite = math.isfinite(number)  # type: ignore[arg-type]
    except OverflowError:  # an int too large for a double
        finite = False
    if not finite:
        raise PydanticCustomError("finite_number", f"must be a finite number, got {value!r}")
    return number  # type: ignore[return-value]


def _quantity(value: object) -> int:
    number: object = value
    if isinstance(value, bool):
        raise _type_error("a whole number", value)
    if isinstance(value, str):
        number = _parse_number(value)
    elif isinstance(value, Decimal):
        number = float(value) if value.is_finite() else None
    elif not isinstance(value, int | float):
        raise _type_error("a whole number", value)
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if isinstance(number, int) and 1 <= number <= INT32_MAX:
        return number
    raise PydanticCustomError(
        "positive_int32", f"must be a whole number from 1 to {INT32_MAX}, got {value!r}"
    )


_TIMESTAMP_FORMS = (
    "epoch milliseconds (an integer or a decimal string) or a timezone-aware datetime"
)


def timestamp_ms(value: object) -> int:
    """Read a timestamp as epoch milliseconds, or raise a `timestamp_format` error."""
    if isinstance(value, bool):
        raise PydanticCustomError("timestamp_format", f"must be {_TIMESTAMP_FORMS}, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if _INT_TEXT.fullmatch(value):
            return int(value)
        raise PydanticCustomError(
            "timestamp_format", f"must be {_TIMESTAMP_FORMS}; {value!r} is not a decimal integer"
        )
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise PydanticCustomError(
            "timestamp_format", f"must be whole epoch milliseconds, got {value!r}"
        )
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise PydanticCustomError(
                "timestamp_format",
                "a datetime needs a timezone (a naive datetime is ambiguous); "
                "use e.g. datetime.now(timezone.utc)",
            )
        return (value - _EPOCH) // _ONE_MS
    raise PydanticCustomError("timestamp_format", f"must be {_TIMESTAMP_FORMS}, got {kind(value)}")


def _timestamp(value: object, info: ValidationInfo) -> int:
    ms = timestamp_ms(value)
    if ms <= 0:
        raise PydanticCustomError(
            "timestamp_format", f"must be a positive number of epoch milliseconds, got {ms}"
        )
    if ms < SECONDS_BELOW_MS:
        raise PydanticCustomError(
            "timestamp_seconds",
            f"{ms} looks like seconds; timestamp must be epoch milliseconds (e.g. {ms * 1000})",
        )
    context = info.context or {}
    now_ms = context.get("now_ms")
    if now_ms is None:
        now_ms = time.time_ns() // 1_000_000
    if ms > now_ms + MAX_FUTURE_MS:
        hint = "; it looks like micro- or nanoseconds" if ms > MICROSECONDS_ABOVE else ""
        raise PydanticCustomError(
            "timestamp_future",
            f"{ms} is more than 60 s in the future (now is {now_ms} ms){hint}; "
            "timestamp must be epoch milliseconds and not in the future",
        )
    return ms


Text = Annotated[str, StringConstraints(strict=True)]
Id128 = Annotated[str, StringConstraints(strict=True, max_length=MAX_ID_CHARS)]
EventId = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=MAX_ID_CHARS)]
EventType = Annotated[str, _enum("event type", EVENT_TYPES, "UNKNOWN_EVENT_TYPE", "enum")]
ChannelType = Annotated[str, _enum("channel type", CHANNEL_TYPES, "UNKNOWN_CHANNEL_TYPE", "enum")]
Currency = Annotated[str, _enum("currency", CURRENCIES, "UNKNOWN_CURRENCY", "currency")]
PersonalizationMode = Annotated[
    str,
    _enum("personalization mode", PERSONALIZATION_MODES, "UNKNOWN_PERSONALIZATION_MODE", "enum"),
]
Amount = Annotated[float, PlainValidator(_amount)]
Quantity = Annotated[int, PlainValidator(_quantity)]
TimestampMs = Annotated[int, PlainValidator(_timestamp)]


class _Model(BaseModel):
    # Unknown keys reach the model only after schema.clean vetted them; keep them for the wire.
    model_config = ConfigDict(extra="allow", protected_namespaces=())


class Money(_Model):
    """Moloco's commonMoney."""

    currency: Currency
    amount: Amount


class EventDevice(_Model):
    """Moloco's EventDevice, plus `ip`, which Moloco's own JS client sends."""

    os: Text | None = None
    os_version: Text | None = None
    advertising_id: Text | None = None
    unique_device_id: Id128 | None = None
    persistent_id: Id128 | None = None
    model: Text | None = None
    ua: Text | None = None
    language: Text | None = None
    ip: Text | None = None


class EventItem(_Model):
    """Moloco's EventItem (id or item_group_id, checked in eventfwd.core.schema)."""

    id: Text | None = None
    price: Money | None = None
    quantity: Quantity | None = None
    item_group_id: Text | None = None
    seller_id: Text | None = None
    price_seller: Money | None = None


class Event(_Model):
    """Moloco's v1Event; field order is the wire order."""

    id: EventId
    event_type: EventType
    timestamp: TimestampMs
    channel_type: ChannelType
    domain: Text | None = None
    user_id: Id128 | None = None
    device: EventDevice | None = None
    items: Annotated[list[EventItem], Field(strict=True)] | None = None
    revenue: Money | None = None
    search_query: Text | None = None
    session_id: Id128 | None = None
    custom_id: Id128 | None = None
    page_id: Text | None = None
    referrer_page_id: Text | None = None
    shipping_charge: Money | None = None
    decision_track_id: Text | None = None
    personalization_mode: PersonalizationMode | None = None


def _dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _too_long(error: Any) -> str:
    limit = error.get("ctx", {}).get("max_length")
    return f"must be at most {limit} characters, got {len(error['input'])}"


_BUILTIN: dict[str, tuple[str, Callable[[Any], str]]] = {
    "missing": ("required", lambda e: "is required"),
    "string_type": ("type", lambda e: f"must be a string, got {kind(e['input'])}"),
    "string_too_long": ("max_length", _too_long),
    "string_too_short": ("empty", lambda e: "must not be empty (omit it to have one minted)"),
    "model_type": ("type", lambda e: f"must be an object, got {kind(e['input'])}"),
    "model_attributes_type": ("type", lambda e: f"must be an object, got {kind(e['input'])}"),
    "dict_type": ("type", lambda e: f"must be an object, got {kind(e['input'])}"),
    "list_type": ("type", lambda e: f"must be a list, got {kind(e['input'])}"),
}


def field_errors(exc: ValidationError) -> list[FieldError]:
    """Turn pydantic's errors into ours: our rule codes and wording, dotted paths."""
    found = []
    for error in exc.errors(include_url=False):
        path = _dotted(error["loc"])
        builtin = _BUILTIN.get(error["type"])
        if builtin is None:  # our PydanticCustomError: type is the rule, msg is ours
            found.append(FieldError(path, error["type"], error["msg"]))
        else:
            rule, message = builtin
            found.append(FieldError(path, rule, message(error)))
    return found
