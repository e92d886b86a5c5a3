"""The fast path of `schema.validate`: events of the common shape, checked and serialised in Rust.

The full check (`schema.clean`, then the models of `schema.models`, then the rules that
join fields) runs Python for every key and value, which costs tens of microseconds an event. Most
events need none of it: every key is Moloco's, every value already has its wire type. This
module's pydantic-core schema takes exactly those events in one Rust pass, and its serialiser
writes their body. It is deliberately narrower than the full check: it refuses unknown keys
(which must be vetted for typos), `track_id` (an alias to merge), numeric strings, datetimes,
Decimals, floats that stand for whole numbers, tuples and nulls in required fields. Whatever
it refuses goes to the full check, which accepts it or words every error; so this schema needs
no error messages of its own, and may refuse an event the full check accepts, never the
reverse. Its fields mirror the models' (tests/unit/test_schema.py checks both of these).
"""

from __future__ import annotations

from pydantic_core import CoreSchema, SchemaSerializer, SchemaValidator
from pydantic_core import core_schema as cs

from eventfwd.core.schema.models import (
    CHANNEL_TYPES,
    CURRENCIES,
    EVENT_TYPES,
    INT32_MAX,
    MAX_ID_CHARS,
    PERSONALIZATION_MODES,
    SECONDS_BELOW_MS,
    new_event_id,
)

__all__ = ["EVENT_SCHEMA", "SERIALIZER", "VALIDATOR"]

# Python's json writes a float under 1e-4 in exponent form (1e-05), pydantic-core writes it in
# full (0.00001); every other finite float reads the same in both. Such amounts take the full
# path, so that both paths write the same bytes; so do integers beyond 2**53 (the full check
# refuses those too large for a double, and no real amount comes near).
SAME_FLOAT_TEXT_FROM = 1e-4
MAX_EXACT_INT = 2**53

_TEXT = cs.str_schema(strict=True)
_ID128 = cs.str_schema(strict=True, max_length=MAX_ID_CHARS)
_EVENT_ID = cs.str_schema(strict=True, min_length=1, max_length=MAX_ID_CHARS)


def _one_of(values: tuple[str, ...]) -> CoreSchema:
    # A literal schema takes a str (or a str enum member, as plain text), never bytes or an Enum.
    return cs.literal_schema(list(values))


def _float(ge: float | None = None, le: float | None = None) -> CoreSchema:
    # Only a float: a strict float schema would take an int and turn it into a float.
    return cs.chain_schema(
        [cs.is_instance_schema(float), cs.float_schema(allow_inf_nan=False, ge=ge, le=le)]
    )


# Whatever the full check takes as it is: an int, or a float that both serialisers write alike.
_AMOUNT = cs.union_schema(
    [
        cs.int_schema(strict=True, ge=-MAX_EXACT_INT, le=MAX_EXACT_INT),
        _float(ge=SAME_FLOAT_TEXT_FROM),
        _float(le=-SAME_FLOAT_TEXT_FROM),
        _float(ge=0, le=0),
    ],
    mode="left_to_right",
)
_QUANTITY = cs.int_schema(strict=True, ge=1, le=INT32_MAX)
# The "not in the future" bound depends on the clock: `schema.validate` checks it after this pass.
_TIMESTAMP = cs.int_schema(
    strict=True, ge=SECONDS_BELOW_MS, serialization=cs.to_string_ser_schema()
)


def _required(schema: CoreSchema) -> cs.TypedDictField:
    return cs.typed_dict_field(schema)


def _optional(schema: CoreSchema) -> cs.TypedDictField:
    """A key that may be absent or null (null is absent: the body leaves nulls out)."""
    return cs.typed_dict_field(cs.nullable_schema(schema), required=False)


def _object(**fields: cs.TypedDictField) -> CoreSchema:
    """An object of these keys and no other, validated to a dict with its keys in this order."""
    return cs.typed_dict_schema(fields, extra_behavior="forbid")


_MONEY = _object(currency=_required(_one_of(CURRENCIES)), amount=_required(_AMOUNT))

_DEVICE = _object(
    os=_optional(_TEXT),
    os_version=_optional(_TEXT),
    advertising_id=_optional(_TEXT),
    unique_device_id=_optional(_ID128),
    persistent_id=_optional(_ID128),
    model=_optional(_TEXT),
    ua=_optional(_TEXT),
    language=_optional(_TEXT),
    ip=_optional(_TEXT),
)

_ITEM = _object(
    id=_optional(_TEXT),
    price=_optional(_MONEY),
    quantity=_optional(_QUANTITY),
    item_group_id=_optional(_TEXT),
    seller_id=_optional(_TEXT),
    price_seller=_optional(_MONEY),
)

EVENT_SCHEMA = _object(
    # An absent id is minted as the full check mints it; a null one is left to the full check.
    id=cs.typed_dict_field(
        cs.with_default_schema(_EVENT_ID, default_factory=new_event_id), required=False
    ),
    event_type=_required(_one_of(EVENT_TYPES)),
    timestamp=_required(_TIMESTAMP),
    channel_type=_required(_one_of(CHANNEL_TYPES)),
    domain=_optional(_TEXT),
    user_id=_optional(_ID128),
    device=_optional(_DEVICE),
    items=_optional(cs.list_schema(_ITEM, strict=True)),
    revenue=_optional(_MONEY),
    search_query=_optional(_TEXT),
    session_id=_optional(_ID128),
    custom_id=_optional(_ID128),
    page_id=_optional(_TEXT),
    referrer_page_id=_optional(_TEXT),
    shipping_charge=_optional(_MONEY),
    decision_track_id=_optional(_TEXT),
    personalization_mode=_optional(_one_of(PERSONALIZATION_MODES)),
)

# VALIDATOR.validate_python(event): the event's values as a dict, keys in wire order, or
# ValidationError when it is not of the common shape (a whole batch in one call is no faster).
# SERIALIZER.to_json(values, exclude_none=True): the wire body as UTF-8 bytes, or
# PydanticSerializationError for a string UTF-8 cannot carry (a lone surrogate).
VALIDATOR = SchemaValidator(EVENT_SCHEMA)
SERIALIZER = SchemaSerializer(EVENT_SCHEMA)
