"""Unit tests of eventfwd.core.schema: every rule of Moloco's User Event API, valid and invalid."""

from __future__ import annotations

import copy
import enum
import json
import math
import time
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import eventfwd.core
from eventfwd.core.errors import FieldError, InvalidEvent
from eventfwd.core.schema import (
    MAX_EVENT_BYTES,
    ValidEvent,
    validate_event,
    validate_events,
    validate_platform_id,
)
from eventfwd.core.schema import fast as schema_fast
from eventfwd.core.schema import validate as schema_validate
from eventfwd.core.schema.models import (
    CHANNEL_TYPES,
    CURRENCIES,
    EVENT_TYPES,
    Event,
    EventDevice,
    EventItem,
    Money,
)
from eventfwd.devkit.samples import sample_events
from tests.support.events import DROP, ITEM_TYPES, NOW_MS, minimal, usd

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "moloco_examples.jsonl"
OPENAPI = Path(eventfwd.core.__file__).parent / "moloco" / "mcm-event-api.openapi.json"


def validate(event: Any, **kwargs: Any) -> ValidEvent:
    kwargs.setdefault("now_ms", NOW_MS)
    return validate_event(event, **kwargs)


def refusal(event: Any, **kwargs: Any) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        validate(event, **kwargs)
    return caught.value


def broken(event: Any, **kwargs: Any) -> set[tuple[str, str]]:
    """The (path, rule) pairs an invalid event breaks."""
    return {(e.path, e.rule) for e in refusal(event, **kwargs).errors}


def only_error(event: Any, **kwargs: Any) -> FieldError:
    errors = refusal(event, **kwargs).errors
    assert len(errors) == 1, errors
    return errors[0]


def load_examples() -> list[dict[str, Any]]:
    lines = EXAMPLES.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def moved_to_now(example: dict[str, Any]) -> dict[str, Any]:
    event = copy.deepcopy(example)
    event["timestamp"] = str(NOW_MS - 10_000 + int(example["timestamp"]) % 10_000)
    return event


# --- Moloco's examples ---------------------------------------------------------------------


@pytest.mark.parametrize("example", load_examples(), ids=lambda e: e["event_type"])
def test_every_moloco_example_passes_and_is_sent_as_given(example: dict[str, Any]) -> None:
    event = moved_to_now(example)
    valid = validate(event)
    assert valid.wire == event
    assert json.loads(valid.body) == event
    assert valid.id == example["id"]


def test_the_examples_cover_every_event_type() -> None:
    assert sorted(e["event_type"] for e in load_examples()) == sorted(EVENT_TYPES)


def test_the_body_is_the_compact_json_of_the_wire() -> None:
    valid = validate(moved_to_now(load_examples()[-1]))
    assert valid.body == json.dumps(valid.wire, separators=(",", ":"), ensure_ascii=False)


def test_the_wire_puts_keys_in_schema_order_with_id_first() -> None:
    event = minimal(
        "SEARCH", page_id="p", custom_id="c", id="e-1", device={"os": "ios", "persistent_id": "p"}
    )
    wire = validate(dict(reversed(list(event.items())))).wire
    assert list(wire) == [
        "id",
        "event_type",
        "timestamp",
        "channel_type",
        "user_id",
        "device",
        "search_query",
        "custom_id",
        "page_id",
    ]


def test_the_validator_never_mutates_its_input() -> None:
    event = minimal("PURCHASE", track_id="t", device={"os": None}, extra={"a": None, "b": (1,)})
    before = copy.deepcopy(event)
    validate(event)
    assert event == before


# --- required fields and enums ---------------------------------------------------------------


@pytest.mark.parametrize("field", ["event_type", "timestamp", "channel_type"])
@pytest.mark.parametrize("absent", [DROP, None], ids=["missing", "null"])
def test_a_required_field_that_is_missing_or_null_is_refused(field: str, absent: object) -> None:
    error = only_error(minimal(**{field: absent}))
    assert (error.path, error.rule, error.message) == (field, "required", "is required")


@pytest.mark.parametrize("event_type", EVENT_TYPES)
@pytest.mark.parametrize("channel_type", CHANNEL_TYPES)
def test_every_event_type_and_channel_type_is_accepted(event_type: str, channel_type: str) -> None:
    event = minimal(event_type, channel_type=channel_type, device={"os": "android"})
    assert validate(event).wire["event_type"] == event_type


@pytest.mark.parametrize("mode", ["STANDARD", "METRIC_ONLY", "ID_LESS"])
def test_every_personalization_mode_is_accepted(mode: str) -> None:
    assert validate(minimal(personalization_mode=mode)).wire["personalization_mode"] == mode


@pytest.mark.parametrize(
    ("field", "value", "rule", "says"),
    [
        ("event_type", "UNKNOWN_EVENT_TYPE", "enum", "unset default"),
        ("event_type", "home", "enum", "'HOME' (upper case)"),
        ("event_type", "CLICK", "enum", "must be one of HOME, LAND"),
        ("event_type", 3, "type", "must be a string, got an integer"),
        ("channel_type", "UNKNOWN_CHANNEL_TYPE", "enum", "unset default"),
        ("channel_type", "WEB", "enum", "must be one of APP, SITE, DESKTOP_SITE, MOBILE_SITE"),
        ("personalization_mode", "UNKNOWN_PERSONALIZATION_MODE", "enum", "unset default"),
        ("personalization_mode", "FULL", "enum", "STANDARD, METRIC_ONLY, ID_LESS"),
        ("personalization_mode", True, "type", "got a boolean"),
    ],
)
def test_an_enum_outside_its_list_is_refused(field: str, value: Any, rule: str, says: str) -> None:
    error = only_error(minimal(**{field: value}))
    assert (error.path, error.rule) == (field, rule)
    assert says in error.message


class StrKind(enum.StrEnum):
    HOME = "HOME"


class MixinKind(str, enum.Enum):  # noqa: UP042 - str() of this one is "MixinKind.HOME"
    HOME = "HOME"


@pytest.mark.parametrize("member", [StrKind.HOME, MixinKind.HOME])
def test_a_str_enum_member_is_accepted_and_sent_as_plain_text(member: str) -> None:
    wire = validate(minimal(event_type=member)).wire
    assert type(wire["event_type"]) is str
    assert wire["event_type"] == "HOME"


# --- lengths, identifiers and string types ---------------------------------------------------

LIMITED = [
    "id",
    "user_id",
    "custom_id",
    "session_id",
    "device.persistent_id",
    "device.unique_device_id",
]


def with_path(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    if path.startswith("device."):
        event.setdefault("device", {})[path.removeprefix("device.")] = value
    else:
        event[path] = value
    return event


@pytest.mark.parametrize("path", LIMITED)
def test_a_limited_field_of_128_characters_is_accepted(path: str) -> None:
    validate(with_path(minimal(), path, "x" * 128))


@pytest.mark.parametrize("path", LIMITED)
def test_a_limited_field_of_129_characters_is_refused(path: str) -> None:
    error = only_error(with_path(minimal(), path, "é" * 129))
    assert (error.path, error.rule) == (path, "max_length")
    assert error.message == "must be at most 128 characters, got 129"


@pytest.mark.parametrize(
    "identity",
    [{"user_id": "u"}, {"custom_id": "c"}, {"device": {"persistent_id": "p"}}],
    ids=["user_id", "custom_id", "device.persistent_id"],
)
def test_any_one_identifier_is_enough(identity: dict[str, Any]) -> None:
    validate({**minimal(user_id=DROP), **identity})


@pytest.mark.parametrize(
    "identity",
    [
        {},
        {"user_id": "", "custom_id": "", "device": {"persistent_id": ""}},
        {"user_id": None, "device": {"persistent_id": None}},
        {"session_id": "s", "device": {"unique_device_id": "d", "advertising_id": "a"}},
    ],
    ids=["none", "empty-strings", "nulls", "deprecated-ids-only"],
)
def test_an_event_without_a_usable_identifier_is_refused(identity: dict[str, Any]) -> None:
    error = only_error({**minimal(user_id=DROP), **identity})
    assert (error.path, error.rule) == ("", "identifier_required")
    assert "no available valid identifier" in error.message


@pytest.mark.parametrize(
    ("path", "value", "says"),
    [
        ("user_id", 12345, "an integer"),
        ("page_id", 1.5, "a number"),
        ("search_query", ["eye", "cream"], "a list"),
        ("domain", True, "a boolean"),
        ("device.os", 17, "an integer"),
        ("device.ip", {"v4": "1.2.3.4"}, "an object"),
        ("referrer_page_id", b"home", "bytes"),
    ],
)
def test_a_string_field_refuses_other_types_instead_of_coercing(
    path: str, value: Any, says: str
) -> None:
    error = only_error(with_path(minimal(), path, value))
    assert (error.path, error.rule) == (path, "type")
    assert error.message == f"must be a string, got {says}"


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("device", "iphone", "device"),
        ("device", ["ios"], "device"),
        ("items", {"id": "1"}, "items"),
        ("items", "sku-1", "items"),
        ("items", [None], "items.0"),
        ("items", [{"id": "1"}, "sku-2"], "items.1"),
        ("revenue", 12.5, "revenue"),
        ("shipping_charge", "free", "shipping_charge"),
    ],
)
def test_an_object_or_list_field_of_the_wrong_shape_is_refused(
    field: str, value: Any, path: str
) -> None:
    errors = refusal(minimal(**{field: value})).errors
    assert [(e.path, e.rule) for e in errors] == [(path, "type")]


def test_device_ip_is_a_known_field_and_is_sent() -> None:
    wire = validate(minimal(device={"ip": "203.0.113.7", "ua": "Mozilla/5.0"})).wire
    assert wire["device"] == {"ip": "203.0.113.7", "ua": "Mozilla/5.0"}


# --- the event id ------------------------------------------------------------------------------


@pytest.mark.parametrize("absent", [DROP, None], ids=["missing", "null"])
def test_a_missing_id_is_minted_as_a_uuid4(absent: object) -> None:
    valid = validate(minimal(id=absent))
    assert uuid.UUID(valid.id).version == 4
    assert valid.wire["id"] == valid.id
    assert validate(valid.wire).id == valid.id


def test_two_events_without_ids_get_different_ids() -> None:
    assert validate(minimal()).id != validate(minimal()).id


def test_a_given_id_is_kept() -> None:
    assert validate(minimal(id="evt-42")).id == "evt-42"


@pytest.mark.parametrize(
    ("value", "rule"),
    [("", "empty"), ("x" * 129, "max_length"), (42, "type"), (uuid.uuid4(), "type")],
)
def test_a_bad_id_is_refused(value: Any, rule: str) -> None:
    error = only_error(minimal(id=value))
    assert (error.path, error.rule) == ("id", rule)


# --- rules that join fields --------------------------------------------------------------------


@pytest.mark.parametrize("event_type", ITEM_TYPES)
@pytest.mark.parametrize("items", [DROP, None, []], ids=["missing", "null", "empty"])
def test_an_item_event_without_items_is_refused(event_type: str, items: object) -> None:
    error = only_error(minimal(event_type, items=items))
    assert (error.path, error.rule) == ("items", "items_required")
    assert event_type in error.message


@pytest.mark.parametrize("event_type", ITEM_TYPES)
@pytest.mark.parametrize(
    "item",
    [
        {"id": "1"},
        {"item_group_id": "g"},
        {"id": "", "item_group_id": "g"},
        {"id": "1", "quantity": 3},
    ],
)
def test_an_item_needs_only_an_id_or_an_item_group_id(event_type: str, item: dict) -> None:
    validate(minimal(event_type, items=[item]))


@pytest.mark.parametrize("event_type", [*ITEM_TYPES, "HOME"])
@pytest.mark.parametrize(
    "item",
    [{}, {"id": ""}, {"id": None, "item_group_id": ""}, {"seller_id": "s", "price": usd()}],
    ids=["empty", "empty-id", "null-and-empty", "no-ids"],
)
def test_an_item_without_id_or_item_group_id_is_refused(event_type: str, item: dict) -> None:
    errors = refusal(minimal(event_type, items=[{"id": "ok"}, item])).errors
    assert [(e.path, e.rule) for e in errors] == [("items.1", "item_id_required")]


def test_a_purchase_without_revenue_is_refused() -> None:
    error = only_error(minimal("PURCHASE", revenue=DROP))
    assert (error.path, error.rule) == ("revenue", "revenue_required")


@pytest.mark.parametrize(
    ("event_type", "field", "rule"),
    [
        ("SEARCH", "search_query", "search_query_required"),
        ("PAGE_VIEW", "page_id", "page_id_required"),
    ],
)
@pytest.mark.parametrize("value", [DROP, None, ""], ids=["missing", "null", "empty"])
def test_search_needs_a_query_and_page_view_needs_a_page_id(
    event_type: str, field: str, rule: str, value: object
) -> None:
    error = only_error(minimal(event_type, **{field: value}))
    assert (error.path, error.rule) == (field, rule)


def test_events_of_other_types_need_neither_query_nor_page_id() -> None:
    validate(minimal("HOME"))
    validate(minimal("LAND", page_id=""))


@pytest.mark.parametrize("os", ["ios", "iOS 17.5", "Android", "android 14", "ANDROID"])
def test_the_app_channel_accepts_an_ios_or_android_device_os(os: str) -> None:
    validate(minimal(channel_type="APP", device={"os": os}))


@pytest.mark.parametrize(
    "device", [DROP, {}, {"os": ""}, {"os": "windows"}, {"os": None}], ids=repr
)
def test_the_app_channel_refuses_an_event_without_ios_or_android(device: object) -> None:
    error = only_error(minimal(channel_type="APP", device=device))
    assert (error.path, error.rule) == ("device.os", "app_device_os")


def test_the_app_rule_does_not_repeat_a_device_os_type_error() -> None:
    errors = refusal(minimal(channel_type="APP", device={"os": 17})).errors
    assert [(e.path, e.rule) for e in errors] == [("device.os", "type")]


@pytest.mark.parametrize("channel_type", ["SITE", "DESKTOP_SITE", "MOBILE_SITE"])
def test_site_channels_need_no_device_os(channel_type: str) -> None:
    validate(minimal(channel_type=channel_type, device={"os": "windows"}))


def test_an_unknown_event_type_skips_the_rules_that_depend_on_it() -> None:
    assert broken(minimal(event_type="BUY", items=DROP)) == {("event_type", "enum")}


# --- money and quantity ------------------------------------------------------------------------

MONEY_PATHS = ["revenue", "shipping_charge", "items.0.price", "items.0.price_seller"]


def with_money(path: str, money: Any) -> dict[str, Any]:
    event = minimal("PURCHASE")
    if path.startswith("items.0."):
        event["items"][0][path.removeprefix("items.0.")] = money
    else:
        event[path] = money
    return event


@pytest.mark.parametrize("currency", CURRENCIES)
def test_every_moloco_currency_is_accepted(currency: str) -> None:
    validate(with_money("revenue", {"currency": currency, "amount": 1}))


@pytest.mark.parametrize("path", MONEY_PATHS)
@pytest.mark.parametrize(
    ("money", "field", "rule"),
    [
        ({"currency": "UNKNOWN_CURRENCY", "amount": 1}, "currency", "currency"),
        ({"currency": "usd", "amount": 1}, "currency", "currency"),
        ({"currency": "XYZ", "amount": 1}, "currency", "currency"),
        ({"currency": 840, "amount": 1}, "currency", "type"),
        ({"amount": 1}, "currency", "required"),
        ({"currency": "USD"}, "amount", "required"),
        ({"currency": "USD", "amount": None}, "amount", "required"),
        ({"currency": "USD", "amount": math.nan}, "amount", "finite_number"),
        ({"currency": "USD", "amount": math.inf}, "amount", "finite_number"),
        ({"currency": "USD", "amount": -math.inf}, "amount", "finite_number"),
        ({"currency": "USD", "amount": "NaN"}, "amount", "finite_number"),
        ({"currency": "USD", "amount": "inf"}, "amount", "finite_number"),
        ({"currency": "USD", "amount": "1e400"}, "amount", "finite_number"),
        ({"currency": "USD", "amount": "12,50"}, "amount", "finite_number"),
        ({"currency": "USD", "amount": 10**400}, "amount", "finite_number"),
        ({"currency": "USD", "amount": Decimal("NaN")}, "amount", "finite_number"),
        ({"currency": "USD", "amount": True}, "amount", "type"),
        ({"currency": "USD", "amount": [1]}, "amount", "type"),
    ],
)
def test_bad_money_is_refused_wherever_it_appears(
    path: str, money: dict, field: str, rule: str
) -> None:
    error = only_error(with_money(path, money))
    assert (error.path, error.rule) == (f"{path}.{field}", rule)


@pytest.mark.parametrize(
    ("amount", "sent"),
    [
        (19.99, 19.99),
        (0, 0),
        (-5, -5),
        ("19.99", 19.99),
        ("5", 5),
        ("5.0", 5.0),
        ("-0.5", -0.5),
        (".5", 0.5),
        ("1e3", 1000.0),
        (Decimal("1.50"), 1.5),
    ],
)
def test_an_amount_is_normalised_to_a_json_number(amount: Any, sent: float) -> None:
    wire = validate(with_money("revenue", usd(amount))).wire
    assert wire["revenue"]["amount"] == sent
    assert type(wire["revenue"]["amount"]) is type(sent)


@pytest.mark.parametrize(
    ("quantity", "sent"),
    [(1, 1), (2**31 - 1, 2**31 - 1), ("3", 3), (2.0, 2), ("4.0", 4), ("1e2", 100)],
)
def test_a_quantity_is_normalised_to_an_int(quantity: Any, sent: int) -> None:
    wire = validate(minimal("ADD_TO_CART", items=[{"id": "1", "quantity": quantity}])).wire
    assert wire["items"][0]["quantity"] == sent
    assert type(wire["items"][0]["quantity"]) is int


@pytest.mark.parametrize(
    ("quantity", "rule"),
    [
        (0, "positive_int32"),
        (-1, "positive_int32"),
        (2**31, "positive_int32"),
        (1.5, "positive_int32"),
        (math.nan, "positive_int32"),
        ("two", "positive_int32"),
        ("", "positive_int32"),
        ("1e10", "positive_int32"),
        (True, "type"),
        ([1], "type"),
    ],
)
def test_a_quantity_outside_positive_int32_is_refused(quantity: Any, rule: str) -> None:
    error = only_error(minimal("ADD_TO_CART", items=[{"id": "1", "quantity": quantity}]))
    assert (error.path, error.rule) == ("items.0.quantity", rule)


# --- timestamps --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "sent"),
    [
        (NOW_MS, str(NOW_MS)),
        (str(NOW_MS - 5), str(NOW_MS - 5)),
        (float(NOW_MS - 7), str(NOW_MS - 7)),
        (NOW_MS + 60_000, str(NOW_MS + 60_000)),
        (10**12, str(10**12)),
        (datetime.fromtimestamp(1_767_225_600.123, tz=UTC), "1767225600123"),
        (datetime(2026, 1, 1, 9, 0, tzinfo=timezone(timedelta(hours=9))), "1767225600000"),
    ],
    ids=["int", "string", "whole-float", "60s-ahead", "1973", "utc-datetime", "kst-datetime"],
)
def test_a_timestamp_is_sent_as_a_decimal_string_of_milliseconds(timestamp: Any, sent: str) -> None:
    assert validate(minimal(timestamp=timestamp)).wire["timestamp"] == sent


def test_a_naive_datetime_is_refused_with_a_word_about_timezones() -> None:
    error = only_error(minimal(timestamp=datetime(2026, 1, 1, 0, 0)))
    assert (error.path, error.rule) == ("timestamp", "timestamp_format")
    assert "timezone" in error.message


@pytest.mark.parametrize("timestamp", [1_767_225_600, "1767225600", 1_767_225_600.0, 1])
def test_a_timestamp_in_seconds_is_refused_as_looking_like_seconds(timestamp: Any) -> None:
    error = only_error(minimal(timestamp=timestamp))
    assert (error.path, error.rule) == ("timestamp", "timestamp_seconds")
    assert "looks like seconds" in error.message
    assert "milliseconds" in error.message


@pytest.mark.parametrize("ahead_ms", [60_001, 3_600_000])
def test_a_timestamp_more_than_60_seconds_ahead_is_refused(ahead_ms: int) -> None:
    error = only_error(minimal(timestamp=NOW_MS + ahead_ms))
    assert (error.path, error.rule) == ("timestamp", "timestamp_future")
    assert "more than 60 s in the future" in error.message


def test_a_microsecond_timestamp_is_refused_with_a_hint() -> None:
    error = only_error(minimal(timestamp=NOW_MS * 1000))
    assert error.rule == "timestamp_future"
    assert "micro" in error.message


def test_the_future_rule_uses_the_wall_clock_by_default() -> None:
    assert validate_event(minimal(timestamp=datetime.now(UTC))).wire["timestamp"]
    with pytest.raises(InvalidEvent):
        validate_event(minimal(timestamp=datetime.now(UTC) + timedelta(minutes=5)))


@pytest.mark.parametrize(
    "timestamp",
    [
        True,
        False,
        1_767_225_600_000.5,
        math.nan,
        "",
        "abc",
        "1.7e12",
        " 1767225600000",
        "-5",
        0,
        -5,
        date(2026, 1, 1),
        [NOW_MS],
        "2026-01-01T00:00:00Z",
    ],
    ids=repr,
)
def test_a_timestamp_that_is_not_epoch_milliseconds_is_refused(timestamp: Any) -> None:
    error = only_error(minimal(timestamp=timestamp))
    assert (error.path, error.rule) == ("timestamp", "timestamp_format")


# --- unknown keys: typos, pass-through, strict mode --------------------------------------------


@pytest.mark.parametrize(
    ("event", "path", "meant"),
    [
        (minimal("SEARCH", serach_query="x"), "serach_query", "'search_query'"),
        (minimal(userId="u"), "userId", "'user_id'"),
        (minimal(**{"event-type": "HOME"}), "event-type", "'event_type'"),
        (minimal(EventType="HOME"), "EventType", "'event_type'"),
        (minimal(Timestamp=1), "Timestamp", "'timestamp'"),
        (minimal(timestmp=1), "timestmp", "'timestamp'"),
        (minimal(chanel_type="SITE"), "chanel_type", "'channel_type'"),
        (minimal(item=[]), "item", "'items'"),
        (minimal(ID="e"), "ID", "'id'"),
        (minimal(trackId="t"), "trackId", "'track_id'"),
        (
            minimal(personalisation_mode="STANDARD"),
            "personalisation_mode",
            "'personalization_mode'",
        ),
        (minimal(persistent_id="p"), "persistent_id", "'device.persistent_id'"),
        (minimal(device={"persistentId": "p"}), "device.persistentId", "'persistent_id'"),
        (minimal(device={"PersistentID": "p"}), "device.PersistentID", "'persistent_id'"),
        (minimal(device={"osVersion": "17"}), "device.osVersion", "'os_version'"),
        (minimal(device={"IP": "1.2.3.4"}), "device.IP", "'ip'"),
        (
            minimal(device={"user_id": "u"}),
            "device.user_id",
            "'user_id' at the event level, not inside device",
        ),
        (
            minimal(items=[{"id": "1", "itemGroupId": "g"}]),
            "items.0.itemGroupId",
            "'item_group_id'",
        ),
        (
            minimal(items=[{"id": "1", "itemgroupid": "g"}]),
            "items.0.itemgroupid",
            "'item_group_id'",
        ),
        (minimal(items=[{"id": "1", "quantitiy": 1}]), "items.0.quantitiy", "'quantity'"),
        (
            minimal(revenue={"currency": "USD", "amount": 1, "curency": "x"}),
            "revenue.curency",
            "'currency'",
        ),
        (
            minimal(items=[{"id": "1", "price": {**usd(), "Amount": 2}}]),
            "items.0.price.Amount",
            "'amount'",
        ),
    ],
)
def test_a_key_close_to_a_moloco_key_is_refused_naming_the_likely_one(
    event: dict, path: str, meant: str
) -> None:
    errors = [e for e in refusal(event).errors if e.rule == "unknown_field_typo"]
    assert [e.path for e in errors] == [path]
    assert errors[0].message == f"unknown field {path.rsplit('.', 1)[-1]!r}: did you mean {meant}?"


def test_the_typo_message_reads_as_the_issue_asks() -> None:
    errors = refusal(minimal("SEARCH", search_query=DROP, serach_query="x")).errors
    assert (
        FieldError(
            "serach_query",
            "unknown_field_typo",
            "unknown field 'serach_query': did you mean 'search_query'?",
        )
        in errors
    )


REAL_EXTRAS = {
    "event": [
        "coupon_code",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "order_id",
        "transaction_id",
        "currency",
        "value",
        "email_sha256",
        "category",
        "discount",
        "tax",
        "referrer",
        "page_url",
        "locale",
        "country",
        "app_version",
        "platform",
        "user_agent",
        "client_id",
        "store_id",
        "channel",
        "session",
        "device_id",
        "tracking_id",
        "customer_id",
        "visitor_id",
        "event_id",
        "event_name",
        "product_id",
        "sku",
        "language",
        "uid",
        "_internal",
    ],
    "device": [
        "app_version",
        "sdk_version",
        "browser",
        "platform",
        "screen_width",
        "os_name",
        "idfv",
        "ip_address",
        "locale",
        "timezone",
        "carrier",
        "manufacturer",
        "device_type",
    ],
    "item": [
        "name",
        "brand",
        "category",
        "variant",
        "sku",
        "discount",
        "coupon",
        "position",
        "list_price",
        "sale_price",
        "product_id",
        "seller",
        "group_id",
        "unit_price",
        "currency",
    ],
    "money": ["currency_code", "amount_micros", "value", "amount_cents", "display"],
}


def placed(level: str, key: str, value: Any) -> tuple[dict[str, Any], list[str | int]]:
    """A valid event with `key` added at `level`, and the path to it on the wire."""
    if level == "event":
        return minimal(**{key: value}), [key]
    if level == "device":
        return minimal(device={"os": "ios", key: value}), ["device", key]
    event = minimal("ADD_TO_CART", items=[{"id": "1", "price": usd()}])
    if level == "item":
        event["items"][0][key] = value
        return event, ["items", 0, key]
    event["items"][0]["price"][key] = value
    return event, ["items", 0, "price", key]


@pytest.mark.parametrize(
    ("level", "key"), [(level, key) for level, keys in REAL_EXTRAS.items() for key in keys]
)
def test_a_real_extra_field_is_not_mistaken_for_a_typo_and_passes_through(
    level: str, key: str
) -> None:
    value = {"nested": [1, "two", {"three": 3.5}], "flag": False}
    event, path = placed(level, key, value)
    wire: Any = validate(event).wire
    for part in path:
        wire = wire[part]
    assert wire == value


def test_pass_through_values_are_copied_with_nulls_dropped_and_tuples_as_lists() -> None:
    extra = {"a": None, "b": (1, None, {"c": None, "d": "e"}), "f": {"g": None}}
    wire = validate(minimal(extra=extra, flag=None)).wire
    assert wire["extra"] == {"b": [1, {"d": "e"}], "f": {}}
    assert "flag" not in wire


@pytest.mark.parametrize(
    ("value", "path", "rule"),
    [
        (math.nan, "extra", "finite_number"),
        ({"x": [1, math.inf]}, "extra.x.1", "finite_number"),
        ({1, 2}, "extra", "type"),
        ({"when": datetime.now(UTC)}, "extra.when", "type"),
        (Decimal("1.5"), "extra", "type"),
        ({3: "x"}, "extra.3", "type"),
    ],
)
def test_a_pass_through_value_that_is_not_json_data_is_refused(
    value: Any, path: str, rule: str
) -> None:
    error = only_error(minimal(extra=value))
    assert (error.path, error.rule) == (path, rule)


def test_a_deeply_nested_pass_through_value_is_refused_not_crashed_on() -> None:
    deep: Any = "leaf"
    for _ in range(2000):
        deep = [deep]
    assert only_error(minimal(extra=deep)).rule == "max_depth"


def test_a_self_referencing_value_is_refused_not_crashed_on() -> None:
    loop: list[Any] = []
    loop.append(loop)
    assert broken(minimal(user_id=loop, extra=loop)) == {
        ("user_id", "type"),
        ("extra" + ".0" * 32, "max_depth"),
    }


def test_a_key_that_is_not_a_string_is_refused() -> None:
    error = only_error({**minimal(), 7: "x"})
    assert (error.path, error.rule) == ("7", "type")


@pytest.mark.parametrize(
    ("level", "key"),
    [("event", "coupon_code"), ("device", "browser"), ("item", "brand"), ("money", "value")],
)
def test_strict_mode_refuses_every_unknown_key_at_every_level(level: str, key: str) -> None:
    event, path = placed(level, key, "x")
    error = only_error(event, strict_fields=True)
    assert (error.path, error.rule) == (".".join(map(str, path)), "unknown_field")
    assert key in error.message


def test_strict_mode_still_names_typos_as_typos_and_accepts_known_keys() -> None:
    validate(moved_to_now(load_examples()[-1]), strict_fields=True)
    validate(minimal(track_id="t", device={"ip": "1.2.3.4"}), strict_fields=True)
    error = only_error(minimal(userId="u", user_id="u"), strict_fields=True)
    assert error.rule == "unknown_field_typo"


# --- alias, nulls -------------------------------------------------------------------------------


def test_track_id_is_sent_as_decision_track_id() -> None:
    wire = validate(minimal(track_id="2X0op")).wire
    assert wire["decision_track_id"] == "2X0op"
    assert "track_id" not in wire


def test_track_id_and_an_equal_decision_track_id_are_accepted() -> None:
    wire = validate(minimal(track_id="t", decision_track_id="t")).wire
    assert wire["decision_track_id"] == "t"
    assert "track_id" not in wire


def test_track_id_and_a_different_decision_track_id_are_refused() -> None:
    error = only_error(minimal(track_id="a", decision_track_id="b"))
    assert (error.path, error.rule) == ("track_id", "alias_conflict")


@pytest.mark.parametrize("event", [minimal(track_id=7), minimal(track_id="t", decision_track_id=7)])
def test_track_id_and_decision_track_id_must_be_strings(event: dict) -> None:
    assert only_error(event).rule == "type"


def test_nulls_are_treated_as_absent_at_every_level() -> None:
    event = minimal(
        "PURCHASE",
        domain=None,
        device={"os": None, "persistent_id": "p", "ip": None},
        items=[
            {"id": "1", "seller_id": None, "price": {"currency": "USD", "amount": 2, "note": None}}
        ],
        shipping_charge=None,
        decision_track_id=None,
        track_id=None,
    )
    wire = validate(event).wire
    assert wire["device"] == {"persistent_id": "p"}
    assert wire["items"] == [{"id": "1", "price": {"currency": "USD", "amount": 2}}]
    assert not {"domain", "shipping_charge", "decision_track_id", "track_id"} & set(wire)


# --- many errors, messages, input shape, size ---------------------------------------------------


def test_every_error_is_reported_at_once_and_str_lists_them_all() -> None:
    event = {
        "event_type": "PURCHASE",
        "timestamp": 1_767_225_600,
        "channel_type": "APP",
        "userId": "u",
        "serach_query": "x",
        "device": {"os": "windows", "persistentId": "p"},
        "items": [
            {"itemGroupId": "g", "quantity": 0, "price": {"currency": "usd", "amount": math.nan}}
        ],
        "track_id": "a",
        "decision_track_id": "b",
    }
    failure = refusal(event)
    expected = {
        ("userId", "unknown_field_typo"),
        ("serach_query", "unknown_field_typo"),
        ("device.persistentId", "unknown_field_typo"),
        ("items.0.itemGroupId", "unknown_field_typo"),
        ("track_id", "alias_conflict"),
        ("timestamp", "timestamp_seconds"),
        ("items.0.quantity", "positive_int32"),
        ("items.0.price.currency", "currency"),
        ("items.0.price.amount", "finite_number"),
        ("", "identifier_required"),
        ("items.0", "item_id_required"),
        ("revenue", "revenue_required"),
        ("device.os", "app_device_os"),
    }
    assert {(e.path, e.rule) for e in failure.errors} == expected
    assert len(failure.errors) == len(expected)
    text = str(failure)
    assert f"({len(expected)} error(s))" in text
    for error in failure.errors:
        assert str(error) in text
    assert failure.as_dicts()[0].keys() == {"path", "rule", "message"}


@pytest.mark.parametrize(
    "event",
    [
        {},
        minimal(id="", items=[None], device="x", revenue={}, event_type=1, channel_type="x"),
        minimal(user_id="x" * 200, timestamp="soon", personalization_mode=0),
    ],
)
def test_messages_are_ours_not_pydantics(event: dict) -> None:
    for error in refusal(event).errors:
        assert "Input should" not in error.message
        assert "Field required" not in error.message
        assert error.rule.replace("_", "").isalnum() and error.rule.islower()


@pytest.mark.parametrize("event", [None, [], "{}", 42, [("event_type", "HOME")]], ids=repr)
def test_input_that_is_not_a_mapping_is_refused_at_the_root(event: Any) -> None:
    error = only_error(event)
    assert (error.path, error.rule) == ("", "type")


def padded_to(size: int, filler: str = "x") -> dict[str, Any]:
    """A valid event whose body is exactly `size` bytes (filler is 1 or 2 bytes in UTF-8)."""
    width = len(filler.encode())
    for event_id in ("e", "ee"):  # one of the two makes the gap a whole number of fillers
        event = minimal(id=event_id, padding="")
        short = len(validate(event).body.encode())
        if (size - short) % width == 0:
            break
    event["padding"] = filler * ((size - short) // width)
    return event


@pytest.mark.parametrize("filler", ["x", "é"])
def test_an_event_of_exactly_64_kib_is_accepted(filler: str) -> None:
    assert len(validate(padded_to(MAX_EVENT_BYTES, filler)).body.encode()) == MAX_EVENT_BYTES


def test_an_event_one_byte_over_64_kib_is_refused() -> None:
    error = only_error(padded_to(MAX_EVENT_BYTES + 1))
    assert (error.path, error.rule) == ("", "max_size")
    assert str(MAX_EVENT_BYTES) in error.message


def test_an_oversized_event_is_refused_for_its_size_alone_before_being_walked() -> None:
    # Its other errors are not looked for: walking hostile input is what the size limit bounds.
    event = minimal(user_id=DROP, padding="x" * MAX_EVENT_BYTES)
    assert broken(event) == {("", "max_size")}


def test_an_event_just_under_the_limit_with_other_errors_reports_them_all() -> None:
    event = minimal(user_id=DROP, padding="x" * (MAX_EVENT_BYTES - 300))
    assert broken(event) == {("", "identifier_required")}


def test_a_lone_surrogate_is_refused_because_utf8_cannot_carry_it() -> None:
    error = only_error(minimal(page_id="bad\ud800"))
    assert (error.path, error.rule) == ("page_id", "encoding")


# --- platform id --------------------------------------------------------------------------------


@pytest.mark.parametrize("platform_id", ["acme", "ACME_kr-prod.v2~x", "a", "x" * 128])
def test_a_url_safe_platform_id_is_accepted(platform_id: str) -> None:
    assert validate_platform_id(platform_id) == platform_id


@pytest.mark.parametrize(
    ("platform_id", "rule"),
    [
        (None, "type"),
        (42, "type"),
        ("", "required"),
        ("x" * 129, "max_length"),
        ("acme/prod", "format"),
        ("acme prod", "format"),
        ("acme%2F", "format"),
        ("acmé", "format"),
        (".", "format"),
        ("..", "format"),
        ("acme\n", "format"),
    ],
)
def test_a_platform_id_unsafe_for_the_url_path_is_refused(platform_id: Any, rule: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        validate_platform_id(platform_id)
    assert [(e.path, e.rule) for e in caught.value.errors] == [("platform_id", rule)]


# --- the models follow Moloco's OpenAPI ----------------------------------------------------------


def openapi_schemas() -> dict[str, Any]:
    return json.loads(OPENAPI.read_text(encoding="utf-8"))["components"]["schemas"]


def test_the_models_name_every_field_of_moloco_s_openapi() -> None:
    from eventfwd.core.schema.models import Event, EventDevice, EventItem, Money

    schemas = openapi_schemas()
    assert set(Event.model_fields) == set(schemas["v1Event"]["properties"])
    assert set(EventDevice.model_fields) == set(schemas["EventDevice"]["properties"]) | {"ip"}
    assert set(EventItem.model_fields) == set(schemas["EventItem"]["properties"])
    assert set(Money.model_fields) == set(schemas["commonMoney"]["properties"])


def test_the_enums_are_moloco_s_without_the_unknown_defaults() -> None:
    from eventfwd.core.schema.models import PERSONALIZATION_MODES

    schemas = openapi_schemas()
    for name, ours in [
        ("EventEventType", EVENT_TYPES),
        ("commonChannelType", CHANNEL_TYPES),
        ("commonCurrency", CURRENCIES),
        ("commonPersonalizationMode", PERSONALIZATION_MODES),
    ]:
        theirs = [v for v in schemas[name]["enum"] if not v.startswith("UNKNOWN_")]
        assert sorted(theirs) == sorted(ours), name


def test_every_length_limit_in_the_openapi_is_enforced() -> None:
    schemas = openapi_schemas()
    limited = [
        f"{prefix}{name}"
        for schema, prefix in [("v1Event", ""), ("EventDevice", "device.")]
        for name, spec in schemas[schema]["properties"].items()
        if "maxLength" in spec
    ]
    assert sorted(limited) == sorted(LIMITED)


# --- the serialiser round trip -------------------------------------------------------------------

texts = st.text(max_size=20)
# Ids have no control characters or line breaks, identifiers are not blank (both refused).
ids = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=128
).filter(str.strip)
amounts = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.decimals(
        allow_nan=False, allow_infinity=False, places=2, min_value=-(10**6), max_value=10**6
    ),
    st.integers(0, 10**6).map(str),
    st.floats(0, 10**6, allow_nan=False).map(repr),
)
moneys = st.fixed_dictionaries(
    {"currency": st.sampled_from(CURRENCIES), "amount": amounts},
    optional={"amount_micros": st.integers(0, 10**9)},
)
quantities = st.one_of(
    st.integers(1, 2**31 - 1), st.integers(1, 10**6).map(str), st.integers(1, 10**6).map(float)
)
items = st.fixed_dictionaries(
    {"id": ids},
    optional={
        "item_group_id": texts,
        "price": moneys,
        "quantity": quantities,
        "seller_id": st.one_of(texts, st.none()),
        "price_seller": moneys,
        "brand": texts,
    },
)
json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), texts
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
timestamps = st.integers(10**12, NOW_MS + 60_000).flatmap(
    lambda ms: st.sampled_from(
        [ms, str(ms), float(ms) if ms < 2**53 else ms, datetime.fromtimestamp(ms / 1000, tz=UTC)]
    )
)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    event_type = draw(st.sampled_from(EVENT_TYPES))
    channel_type = draw(st.sampled_from(CHANNEL_TYPES))
    event = minimal(event_type, channel_type=channel_type, timestamp=draw(timestamps))
    event["device"] = draw(
        st.fixed_dictionaries(
            {"os": st.sampled_from(["ios", "Android 14", "iOS"])},
            optional={
                "persistent_id": ids,
                "os_version": texts,
                "ua": texts,
                "ip": texts,
                "language": st.one_of(st.just("en"), st.none()),
                "app_version": texts,
            },
        )
    )
    if event_type in ITEM_TYPES or draw(st.booleans()):
        event["items"] = draw(st.lists(items, min_size=1, max_size=3))
    optional = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "id": st.one_of(ids, st.none()),
                "user_id": ids,
                "custom_id": ids,
                "session_id": st.text(max_size=128),
                "domain": texts,
                "page_id": ids,
                "referrer_page_id": texts,
                "shipping_charge": moneys,
                "revenue": moneys,
                "track_id": texts,
                "personalization_mode": st.sampled_from(["STANDARD", "METRIC_ONLY", "ID_LESS"]),
                "coupon_code": json_values,
                "utm_source": json_values,
                "order_id": texts,
            },
        )
    )
    event.update(optional)
    return event


def contains_none(value: Any) -> bool:
    if isinstance(value, dict):
        return any(contains_none(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_none(v) for v in value)
    return value is None


@settings(max_examples=300, deadline=None)
@given(valid_events())
def test_the_wire_round_trips_through_its_body_and_through_validation_again(
    event: dict[str, Any],
) -> None:
    valid = validate(event)
    assert json.loads(valid.body) == valid.wire
    assert valid.body == json.dumps(valid.wire, separators=(",", ":"), ensure_ascii=False)
    assert not contains_none(valid.wire)
    again = validate(valid.wire, strict_fields=False)
    assert again.wire == valid.wire
    assert again.body == valid.body
    assert again.id == valid.id


event_keys = st.sampled_from(
    [
        "id",
        "event_type",
        "timestamp",
        "channel_type",
        "user_id",
        "items",
        "device",
        "revenue",
        "track_id",
        "decision_track_id",
        "userId",
        "extra",
        "search_query",
        "page_id",
    ]
)
json_like_events = st.recursive(
    json_leaves | st.sampled_from([*EVENT_TYPES, "APP", "USD", NOW_MS, str(NOW_MS)]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(event_keys, inner, max_size=6),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_like_events)
def test_any_json_input_is_either_accepted_or_refused_with_field_errors(event: Any) -> None:
    try:
        valid = validate(event)
    except InvalidEvent as refused:
        assert refused.errors
        assert all(isinstance(e, FieldError) and e.rule for e in refused.errors)
    else:
        assert json.loads(valid.body) == valid.wire


# --- the fast path ------------------------------------------------------------------------------
# schema.fast takes events of the common shape in one pydantic-core pass; anything else goes
# to the full check. It must never take an event the full check refuses, and must write the same
# body as the full check for every event it takes.


def fast_fields(node: dict[str, Any]) -> list[str]:
    while node["type"] in ("nullable", "list", "default"):
        node = node["items_schema"] if node["type"] == "list" else node["schema"]
    return list(node["fields"])


def fast_field(node: dict[str, Any], name: str) -> dict[str, Any]:
    while node["type"] in ("nullable", "list", "default"):
        node = node["items_schema"] if node["type"] == "list" else node["schema"]
    return node["fields"][name]["schema"]


def test_the_fast_schema_has_the_models_fields_in_their_order() -> None:
    event = schema_fast.EVENT_SCHEMA
    assert fast_fields(event) == list(Event.model_fields)
    assert fast_fields(fast_field(event, "device")) == list(EventDevice.model_fields)
    assert fast_fields(fast_field(event, "items")) == list(EventItem.model_fields)
    for path in ("revenue", "shipping_charge"):
        assert fast_fields(fast_field(event, path)) == list(Money.model_fields)
    for name in ("price", "price_seller"):
        money = fast_field(fast_field(event, "items"), name)
        assert fast_fields(money) == list(Money.model_fields)


def same_on_both_paths(event: Any, now_ms: int = NOW_MS) -> ValidEvent | None:
    """Run both paths; when the fast one takes the event, the full one must give the same."""
    if isinstance(event, dict) and "id" not in event:
        event = {**event, "id": "e-1"}  # a minted id would differ between the two runs
    fast = schema_validate._fast_path(event, now_ms)
    if fast is not None:
        full = schema_validate._full_check(event, False, now_ms)
        assert (fast.id, fast.body, fast.event_ms) == (full.id, full.body, full.event_ms)
    return fast


@pytest.mark.parametrize("example", load_examples(), ids=lambda e: e["event_type"])
def test_common_events_take_the_fast_path(example: dict[str, Any]) -> None:
    event = moved_to_now(example)
    event["timestamp"] = int(event["timestamp"])
    assert same_on_both_paths(event) is not None


@pytest.mark.parametrize("member", [StrKind.HOME, MixinKind.HOME])
def test_a_str_enum_member_takes_the_fast_path_as_plain_text(member: str) -> None:
    fast = same_on_both_paths(minimal(event_type=member))
    assert fast is not None
    assert '"event_type":"HOME"' in fast.body


def test_the_sample_events_take_the_fast_path() -> None:
    now_ms = time.time_ns() // 1_000_000
    for sample in sample_events(8):
        assert same_on_both_paths(sample, now_ms) is not None


@pytest.mark.parametrize(
    "event",
    [
        minimal(track_id="t"),
        minimal(extra="pass-through"),
        minimal(userId="typo"),
        minimal(id=None),
        minimal(timestamp=str(NOW_MS)),
        minimal(timestamp=NOW_MS + 60_001),
        minimal("ADD_TO_CART", items=({"id": "1"},)),
        minimal("ADD_TO_CART", items=[{"id": "1", "quantity": 2.0}]),
        minimal("ADD_TO_CART", items=[{"id": ""}]),
        with_money("revenue", usd(1e-05)),
        with_money("revenue", usd(2**60)),
        with_money("revenue", usd(Decimal("1.5"))),
        minimal(page_id="bad\ud800"),
    ],
    ids=repr,
)
def test_what_the_fast_path_leaves_to_the_full_check(event: dict[str, Any]) -> None:
    assert same_on_both_paths(event) is None


@pytest.mark.parametrize(
    ("amount", "text"),
    [(1e-05, "1e-05"), (-2.5e-07, "-2.5e-07"), (0.0001, "0.0001"), (1e16, "1e+16"), (0.0, "0.0")],
)
def test_an_amount_is_written_as_python_writes_it_whichever_path_takes_it(
    amount: float, text: str
) -> None:
    assert f'"amount":{text}}}' in validate(with_money("revenue", usd(amount))).body


def test_nulls_on_the_fast_path_are_left_out_of_the_body() -> None:
    event = minimal("ADD_TO_CART", items=[{"id": "1", "price": None}], device={"os": None})
    valid = validate({**event, "custom_id": None, "id": "e-1"})
    assert same_on_both_paths({**event, "custom_id": None}) is not None
    assert not contains_none(valid.wire)
    assert valid.wire["device"] == {}


def test_a_64_kib_event_on_the_fast_path_is_accepted_and_one_byte_more_is_not() -> None:
    event = minimal(id="e", page_id="")
    short = len(validate(event).body.encode())
    event["page_id"] = "x" * (MAX_EVENT_BYTES - short)
    assert same_on_both_paths(event) is not None
    event["page_id"] += "x"
    error = only_error(event)
    assert (error.path, error.rule) == ("", "max_size")


fast_texts = st.text(st.characters(codec=None), max_size=12)  # lone surrogates included
fast_moneys = st.fixed_dictionaries(
    {
        "currency": st.sampled_from(CURRENCIES),
        "amount": st.one_of(st.integers(), st.floats(), st.booleans()),
    }
)
fast_items = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(fast_texts, st.none()),
        "item_group_id": fast_texts,
        "price": st.one_of(fast_moneys, st.none()),
        "quantity": st.one_of(st.integers(-5, 2**32), st.floats(0, 10)),
        "price_seller": fast_moneys,
    },
)


@st.composite
def common_events(draw: st.DrawFn) -> dict[str, Any]:
    """Events of the fast path's shape, some of them invalid, with edge values."""
    event_type = draw(st.sampled_from(EVENT_TYPES))
    event = minimal(
        event_type,
        channel_type=draw(st.sampled_from(CHANNEL_TYPES)),
        timestamp=draw(st.integers(10**12 - 1, NOW_MS + 60_001)),
        user_id=draw(st.one_of(st.none(), st.just(""), st.text(min_size=1, max_size=130))),
    )
    optional = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "id": st.text(max_size=129),
                "device": st.fixed_dictionaries(
                    {},
                    optional={
                        "os": st.one_of(st.sampled_from(["ios", "Android 14", "web"]), st.none()),
                        "persistent_id": st.text(max_size=129),
                        "ua": fast_texts,
                    },
                ),
                "items": st.lists(fast_items, max_size=3),
                "revenue": st.one_of(fast_moneys, st.none()),
                "search_query": st.one_of(fast_texts, st.none()),
                "page_id": st.one_of(fast_texts, st.none()),
                "custom_id": fast_texts,
                "personalization_mode": st.sampled_from(["STANDARD", "ID_LESS", "FULL"]),
            },
        )
    )
    event.update(optional)
    return event


@settings(max_examples=500, deadline=None)
@given(st.one_of(common_events(), valid_events(), json_like_events))
def test_the_fast_path_takes_only_what_the_full_check_takes_and_writes_the_same_body(
    event: Any,
) -> None:
    same_on_both_paths(event)


# --- batches --------------------------------------------------------------------------------------


def test_a_batch_is_validated_as_each_of_its_events_is() -> None:
    events = [minimal(id=f"e-{i}", page_id=f"p{i}") for i in range(3)]
    events.append(minimal(id="e-3", extra={"a": (1, None)}))  # takes the full check
    batch = validate_events(iter(events), now_ms=NOW_MS)
    assert batch == [validate(event) for event in events]


@pytest.mark.parametrize("bad_at", [0, 2])
def test_the_first_invalid_event_of_a_batch_is_refused_with_its_index(bad_at: int) -> None:
    events = [minimal(id=f"e-{i}") for i in range(4)]
    events[bad_at] = minimal(user_id=DROP, channel_type="WEB")
    events[3] = minimal(event_type="CLICK")
    with pytest.raises(InvalidEvent) as caught:
        validate_events(events, now_ms=NOW_MS)
    assert caught.value.index == bad_at
    assert caught.value.errors == refusal(events[bad_at]).errors
    assert f"invalid event #{bad_at} (2 error(s))" in str(caught.value)


def test_a_batch_reads_the_clock_once(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = iter([NOW_MS, NOW_MS + 10**9])
    monkeypatch.setattr(schema_validate, "_wall_clock_ms", lambda: next(readings))
    events = [minimal(id="e-0"), minimal(id="e-1", timestamp=NOW_MS + 60_001)]
    with pytest.raises(InvalidEvent) as caught:
        validate_events(events)
    assert caught.value.index == 1
    assert caught.value.errors[0].rule == "timestamp_future"
