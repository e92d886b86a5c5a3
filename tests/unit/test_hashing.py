"""Identifier hashing: SHA-256 (HMAC with a pepper), applied to the three identifiers only."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from eventfwd.core.errors import ConfigError
from eventfwd.core.schema import validate_event
from eventfwd.core.settings import Settings
from producers.hashing import hash_identifier, hash_identifiers

ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def event(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "event_type": "HOME",
        "timestamp": "1767225600000",
        "channel_type": "SITE",
        "page_id": "home",
    }
    return {**base, **fields}


def test_an_identifier_is_hashed_with_sha256_as_lowercase_hex() -> None:
    assert hash_identifier("abc") == ABC_SHA256


def test_a_pepper_keys_the_hash_with_hmac_sha256() -> None:
    expected = hmac.new(b"pepper", b"abc", hashlib.sha256).hexdigest()
    assert hash_identifier("abc", pepper="pepper") == expected
    assert hash_identifier("abc", pepper="pepper") != hash_identifier("abc", pepper="other")


def test_hashing_is_deterministic_and_never_md5_length() -> None:
    assert hash_identifier("user-42") == hash_identifier("user-42")
    assert len(hash_identifier("user-42")) == 64


def test_user_id_custom_id_and_device_persistent_id_are_hashed_and_nothing_else() -> None:
    valid = validate_event(
        event(
            id="ev-1",
            user_id="u-1",
            custom_id="c-1",
            device={"persistent_id": "d-1", "ua": "Mozilla/5.0", "language": "en"},
        ),
        now_ms=1767225700000,
    )
    hashed = hash_identifiers(valid, pepper="p")
    assert hashed.id == "ev-1"
    assert hashed.wire["user_id"] == hash_identifier("u-1", pepper="p")
    assert hashed.wire["custom_id"] == hash_identifier("c-1", pepper="p")
    assert hashed.wire["device"]["persistent_id"] == hash_identifier("d-1", pepper="p")
    assert hashed.wire["device"]["ua"] == "Mozilla/5.0"
    assert hashed.wire["page_id"] == "home"
    assert json.loads(hashed.body) == hashed.wire
    assert list(json.loads(hashed.body)) == list(valid.wire)  # field order kept
    assert valid.wire["user_id"] == "u-1"  # the original is left alone


def test_absent_and_empty_identifiers_stay_as_they_are() -> None:
    valid = validate_event(event(user_id="u-1", custom_id=""), now_ms=1767225700000)
    hashed = hash_identifiers(valid)
    assert hashed.wire["custom_id"] == ""  # hashing "" would make one shared identifier
    assert "device" not in hashed.wire


def test_an_empty_device_persistent_id_is_not_hashed_either() -> None:
    valid = validate_event(event(device={"persistent_id": ""}, user_id="x"), now_ms=1767225700000)
    assert hash_identifiers(valid).wire["device"] == {"persistent_id": ""}


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("false", False), ("1", True)])
def test_hashing_is_opt_in_through_the_environment(raw: str, expected: bool) -> None:
    assert Settings.from_mapping({}).hash_identifiers is False
    assert Settings.from_mapping({"EVENTFWD_HASH_IDENTIFIERS": raw}).hash_identifiers is expected


def test_the_pepper_never_appears_in_repr_or_redacted_output() -> None:
    s = Settings.from_mapping({"EVENTFWD_HASH_PEPPER": "sekrit-pepper"})
    assert s.hash_pepper == "sekrit-pepper"
    assert "sekrit-pepper" not in repr(s) + repr(s.redacted())
    assert s.redacted()["hash_pepper"] == "<set>"


def test_spool_size_setting_is_in_megabytes_and_positive() -> None:
    assert Settings.from_mapping({}).spool_max_mb == 512
    assert Settings.from_mapping({"EVENTFWD_SPOOL_MAX_MB": "0.5"}).spool_max_mb == 0.5
    with pytest.raises(ConfigError, match="EVENTFWD_SPOOL_MAX_MB"):
        Settings.from_mapping({"EVENTFWD_SPOOL_MAX_MB": "0"})
