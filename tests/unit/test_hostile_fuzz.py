"""A fuzz of the validator with hostile values (issue #11, item 7): bounded in time by design.

Every input ends one of two ways: `InvalidEvent` whose errors each have a rule and a path, or an
accepted event whose body is a JSON object within the size limit that validates again. Never
another exception, never slow. (The producer-level fuzz, which also checks that nothing is
written on refusal, is in tests/integration/test_producer_fuzz.py.)
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventfwd.core.errors import ConfigError, FieldError, InvalidEvent
from eventfwd.core.schema import MAX_EVENT_BYTES, validate_event
from eventfwd.core.schema.models import EVENT_TYPES
from eventfwd.core.settings import Settings

NOW_MS = 1_767_225_700_000
PER_CALL_S = 1.0  # hostile input is bounded to a few ms; this only catches a runaway
MOLOCO_KEYS = (
    "id", "event_type", "timestamp", "channel_type", "user_id", "custom_id", "device", "items",
    "revenue", "search_query", "page_id", "track_id", "decision_track_id", "currency", "amount",
    "price", "quantity", "item_group_id", "persistent_id", "os", "ua", "ip",
)  # fmt: skip

hostile_text = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(codec=None), max_size=20),  # surrogates, controls
    st.sampled_from(["", " ", "\t\n", "\x1b[2J", "a\u2028b", "\ud800", "0" * 200, "1e309"]),
)
hostile_keys = st.one_of(
    st.sampled_from(MOLOCO_KEYS),
    st.text(max_size=12),
    st.sampled_from(["userId", "serach_query", "item", "Device", "\ud800k", "k" * 300]),
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.dictionaries(hostile_keys, inner, max_size=6),
    ),
    max_leaves=40,
)


@st.composite
def hostile_events(draw: st.DrawFn) -> Any:
    """A plausible event with hostile values and keys mixed in, or a hostile value outright."""
    if draw(st.integers(0, 9)) == 0:
        return draw(values)
    event: dict[Any, Any] = {
        "event_type": draw(st.one_of(st.sampled_from(EVENT_TYPES), values)),
        "timestamp": draw(st.one_of(st.just(NOW_MS - 1_000), values)),
        "channel_type": draw(st.one_of(st.just("SITE"), values)),
        "user_id": draw(st.one_of(st.just("u-1"), values)),
    }
    event.update(draw(st.dictionaries(hostile_keys, values, max_size=8)))
    return event


def check_outcome(event: Any) -> None:
    started = time.perf_counter()
    try:
        valid = validate_event(event, now_ms=NOW_MS)
    except InvalidEvent as exc:
        assert exc.errors
        assert all(
            isinstance(e, FieldError) and e.rule and isinstance(e.path, str) for e in exc.errors
        )
        json.dumps(exc.as_dicts(), ensure_ascii=False).encode("utf-8")  # a 422 can carry them
    else:
        body = valid.body.encode("utf-8")
        assert len(body) <= MAX_EVENT_BYTES
        wire = json.loads(body)
        assert isinstance(wire, dict) and wire["id"] == valid.id
        assert validate_event(wire, now_ms=NOW_MS).body == valid.body
    assert time.perf_counter() - started < PER_CALL_S


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_events())
def test_hostile_events_are_refused_with_paths_or_accepted_valid(event: Any) -> None:
    check_outcome(event)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.sampled_from(["keys", "items", "nest", "text"]))
def test_hostile_sizes_stay_fast(scale: int, shape: str) -> None:
    n = 40_000 * scale
    base: dict[str, Any] = {
        "event_type": "ADD_TO_CART",
        "timestamp": NOW_MS - 1_000,
        "channel_type": "SITE",
        "user_id": "u",
    }
    if shape == "keys":
        event: Any = {**base, **{f"k{i}": i for i in range(n)}}
    elif shape == "items":
        event = {**base, "items": [{"id": "x"}] * n}
    elif shape == "nest":
        deep: Any = 1
        for _ in range(n // 10):
            deep = {"a": deep}
        event = {**base, "items": [{"id": "x"}], "extra": deep}
    else:
        event = {**base, "items": [{"id": "x"}], "page_id": "p" * n}
    check_outcome(event)


HOSTILE_SETTINGS = [
    {"EVENTFWD_REDIS_URL": "redis://:S3cr3tTail;x@h/0"},
    {"EVENTFWD_REDIS_URL": "redis://u:S3cr3tTail@h:notaport/0"},
    {"EVENTFWD_REDIS_URL": "redis://:S3cr3tTail@h/0?password=S3cr3tTail"},
    {"EVENTFWD_REDIS_URL": "rediss://:S3cr3tTail@h/0?ssl_cert_reqs=bogus"},
    {"EVENTFWD_REDIS_URL": "sentinel://:S3cr3tTail@h1;h2/0"},
    {"EVENTFWD_REDIS_URL": "sentinel://h1/0?sentinel_password=S3cr3tTail;x"},
    {"EVENTFWD_REDIS_URL": "unix://:S3cr3tTail@host/sock"},
    {"EVENTFWD_MOLOCO_API_KEY": "   "},
    {"EVENTFWD_ALLOWED_PLATFORMS": "acme,../x"},
    {"EVENTFWD_ALLOWED_PLATFORMS": "acme-eu,acme.eu"},
    {"EVENTFWD_PLATFORM_X_API_KEY": "S3cr3tTail", "EVENTFWD_ALLOWED_PLATFORMS": "y"},
    {"EVENTFWD_KEY_PREFIX": "a:b\n"},
    {"EVENTFWD_CLIENT_IDS": "trust"},
]


def test_hostile_settings_are_refused_naming_the_variable_never_the_secret() -> None:
    for env in HOSTILE_SETTINGS:
        with pytest.raises(ConfigError) as err:
            Settings.from_mapping(env)
        message = str(err.value)
        assert "EVENTFWD_" in message, env
        assert "S3cr3tTail" not in message, (env, message)
