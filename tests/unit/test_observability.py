"""Sentry reporting without a network: the scrubber, grouping, the no-DSN no-op, beat check-ins."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sentry_sdk
from celery.schedules import schedule

from eventfwd.core.settings import PlatformOverride, Settings
from tests.support.sentry import CaptureTransport
from worker import observability as obs
from worker.observability import FILTERED, BeatMonitor, Scrubber

API_KEY = "mk_live_4f8a2c9e7b1d"
PLATFORM_KEY = "pk_acme_93b7e1c05a"
USER_ID = "5e884898da28047151d0e56f8dc6292773603d0d"
PERSISTENT_ID = "c1f3a9e2b7d04f6e8a5b"
EVENT_ID = "0f8d6c1e-6a7b-4c1e-9f0a-3b2d1c4e5f60"


def settings() -> Settings:
    return Settings(
        moloco_base_url="http://127.0.0.1:9",
        moloco_api_key=API_KEY,
        platforms={"ACME": PlatformOverride(api_key=PLATFORM_KEY)},
    )


@pytest.fixture
def captured() -> Iterator[CaptureTransport]:
    transport = CaptureTransport()
    assert obs.init_sentry(settings(), component="test", transport=transport, dsn="")
    yield transport
    sentry_sdk.get_global_scope().set_client(None)


def dump(value: Any) -> str:
    return json.dumps(value, default=str)


# -- the scrubber ---------------------------------------------------------------------------


def crafted_event() -> dict[str, Any]:
    return {
        "message": f"POST failed with x-api-key: {API_KEY} for acme",
        "logentry": {"message": "key %s", "params": [PLATFORM_KEY], "formatted": "..."},
        "request": {
            "headers": {"X-Api-Key": API_KEY, "Content-Type": "application/json"},
            "header_pairs": [["x-api-key", API_KEY], ["Accept", "*/*"]],
        },
        "tags": {"eventfwd.event_id": EVENT_ID, "eventfwd.platform": "acme"},
        "extra": {
            "sent": {"event": {"user_id": USER_ID, "device": {"persistent_id": PERSISTENT_ID}}},
            "debug": [{"userId": USER_ID}, {"Unique-Device-ID": "idfa-1"}, {"IP": "10.1.2.3"}],
            "body_text": json.dumps({"id": EVENT_ID, "user_id": USER_ID, "ua": "Mozilla/5.0"}),
            "note": f"the key {API_KEY} again",
            "celery-job": {
                "task_name": "eventfwd.deliver",
                "args": [[EVENT_ID, "someone@example.com"], {"user_id": USER_ID}],
                "kwargs": {"event_ids": [EVENT_ID], "session_id": "s-77"},
            },
        },
        "contexts": {
            "dead_letter": {"event_id": EVENT_ID, "custom_id": "9b1f0c7e2d4a"},
            "advertising": {"advertising_id": "ad-1", "nested": {"session_id": "s-1"}},
        },
        "breadcrumbs": {
            "values": [
                {"message": f"sending with key {PLATFORM_KEY}", "data": {"ip": "10.0.0.9"}},
                {"message": f"event_id={EVENT_ID} dead: user_id={USER_ID}", "data": {}},
            ]
        },
        "user": {"id": USER_ID, "ip_address": "10.0.0.1"},
    }


def test_the_scrubber_removes_keys_identifiers_and_bodies_but_keeps_the_rest() -> None:
    event = Scrubber.from_settings(settings()).event(crafted_event())
    text = dump(event)
    for secret in (API_KEY, PLATFORM_KEY, USER_ID, PERSISTENT_ID, "10.1.2.3", "10.0.0.9"):
        assert secret not in text
    for value in ("idfa-1", "9b1f0c7e2d4a", "ad-1", "s-1", "s-77", "someone@example.com"):
        assert value not in text
    assert "user" not in event
    assert event["message"] == f"POST failed with x-api-key: {FILTERED} for acme"
    assert event["request"]["headers"] == {
        "X-Api-Key": FILTERED,
        "Content-Type": "application/json",
    }
    assert event["request"]["header_pairs"] == [["x-api-key", FILTERED], ["Accept", "*/*"]]
    assert event["logentry"]["params"] == [FILTERED]
    assert event["extra"]["sent"]["event"] == {
        "user_id": FILTERED,
        "device": {"persistent_id": FILTERED},
    }
    assert event["extra"]["debug"] == [
        {"userId": FILTERED},
        {"Unique-Device-ID": FILTERED},
        {"IP": FILTERED},
    ]
    assert json.loads(event["extra"]["body_text"]) == {
        "id": EVENT_ID,
        "user_id": FILTERED,
        "ua": FILTERED,
    }
    assert event["contexts"]["advertising"] == {
        "advertising_id": FILTERED,
        "nested": {"session_id": FILTERED},
    }
    crumbs = event["breadcrumbs"]["values"]
    assert crumbs[0] == {"message": f"sending with key {FILTERED}", "data": {"ip": FILTERED}}
    assert crumbs[1]["message"] == f"event_id={EVENT_ID} dead: user_id={FILTERED}"
    # What is left: event ids (allowed), tags, context that is not an identifier.
    assert event["tags"] == {"eventfwd.event_id": EVENT_ID, "eventfwd.platform": "acme"}
    assert event["contexts"]["dead_letter"] == {"event_id": EVENT_ID, "custom_id": FILTERED}
    job = event["extra"]["celery-job"]
    assert job["task_name"] == "eventfwd.deliver"
    assert job["args"] == [[EVENT_ID, FILTERED], FILTERED]
    assert job["kwargs"] == {"event_ids": [EVENT_ID], "session_id": FILTERED}


def test_the_scrubber_keeps_the_integrations_own_filtered_task_arguments_filtered() -> None:
    event = {"extra": {"celery-job": {"task_name": "t", "args": FILTERED, "kwargs": FILTERED}}}
    assert Scrubber().event(event)["extra"]["celery-job"]["args"] == FILTERED


def test_a_breadcrumb_is_scrubbed_before_it_is_recorded() -> None:
    crumb = {"category": "worker.delivery", "message": f"key={API_KEY}", "data": {"ua": "x"}}
    assert Scrubber([API_KEY]).breadcrumb(crumb) == {
        "category": "worker.delivery",
        "message": f"key={FILTERED}",
        "data": {"ua": FILTERED},
    }


def test_a_short_key_is_scrubbed_only_as_a_whole_token() -> None:
    scrubber = Scrubber(["k9"])
    assert scrubber.text("key k9 used; k99 and bk9 are other words") == (
        f"key {FILTERED} used; k99 and bk9 are other words"
    )


def test_the_scrubber_also_hides_the_redis_password() -> None:
    scrubber = Scrubber.from_settings(settings().replace(redis_url="redis://:s3cretpass@h:6379/0"))
    assert "s3cretpass" not in scrubber.text("connect to redis://:s3cretpass@h:6379/0 failed")


def test_the_circuit_log_line_event_is_dropped_because_the_report_replaces_it() -> None:
    scrubber = Scrubber()
    opened = logging.LogRecord(
        "worker.delivery", logging.ERROR, __file__, 1, "platform=%s circuit opened: %s", (), None
    )
    other = logging.LogRecord("worker.delivery", logging.ERROR, __file__, 1, "boom", (), None)
    assert scrubber.before_send({"message": "x"}, {"log_record": opened}) is None
    assert scrubber.before_send({"message": "x"}, {"log_record": other}) == {"message": "x"}


# -- grouping and reports -----------------------------------------------------------------


def test_dead_letters_of_one_kind_share_one_fingerprint_and_other_kinds_do_not() -> None:
    fp = obs.dead_letter_fingerprint
    assert fp("acme", "rejected", "400") == fp("acme", "rejected", "400")
    assert len({tuple(fp("acme", "rejected", s)) for s in ("400", "413", "422")}) == 3
    assert fp("acme", "rejected", "400") != fp("beta", "rejected", "400")
    assert fp("acme", "expired", "") == ["eventfwd", "dead-letter", "acme", "expired", "none"]


def test_reports_are_grouped_tagged_and_levelled(captured: CaptureTransport) -> None:
    for n in range(3):
        obs.report_dead_letter(
            event_id=f"{EVENT_ID[:-1]}{n}",
            platform_id="acme",
            reason="rejected",
            status="400",
            message="missing page_id\nsecond line",
        )
    obs.report_dead_letter(
        event_id=EVENT_ID, platform_id="acme", reason="retries_exhausted", status="", message="x"
    )
    obs.report_circuit(
        platform_id="acme", opened=True, reason="auth", status="403", message="invalid api key"
    )
    obs.report_circuit(platform_id="acme", opened=False, reason="probe_delivered")
    sentry_sdk.flush()
    events = captured.items("event")
    assert len(events) == 6
    dead = events[:3]
    assert {tuple(e["fingerprint"]) for e in dead} == {
        ("eventfwd", "dead-letter", "acme", "rejected", "400")
    }
    assert {e["level"] for e in dead} == {"warning"}
    assert dead[0]["tags"] == {
        "eventfwd.component": "test",
        "eventfwd.platform": "acme",
        "eventfwd.reason": "rejected",
        "eventfwd.status": "400",
        "eventfwd.moloco_message": "missing page_id second line",
        "eventfwd.event_id": f"{EVENT_ID[:-1]}0",
    }
    assert dead[0]["contexts"]["dead_letter"]["moloco_message"] == "missing page_id\nsecond line"
    assert events[3]["fingerprint"][-2:] == ["retries_exhausted", "none"]
    opened, closed = events[4], events[5]
    assert (opened["level"], opened["message"]) == (
        "error",
        "circuit opened on platform acme: auth",
    )
    assert opened["tags"]["eventfwd.status"] == "403"
    assert opened["fingerprint"] == ["eventfwd", "circuit-opened", "acme", "auth"]
    assert (closed["level"], closed["fingerprint"]) == (
        "info",
        ["eventfwd", "circuit-closed", "acme"],
    )
    assert API_KEY not in dump(events)


def test_a_long_moloco_message_is_cut_to_sentrys_tag_limit(captured: CaptureTransport) -> None:
    obs.report_dead_letter(
        event_id=EVENT_ID, platform_id="p", reason="rejected", status="422", message="m" * 900
    )
    sentry_sdk.flush()
    (event,) = captured.items("event")
    assert len(event["tags"]["eventfwd.moloco_message"]) == obs.TAG_VALUE_MAX_CHARS
    assert len(event["contexts"]["dead_letter"]["moloco_message"]) == 500


def test_the_client_collects_no_pii_and_adds_no_trace_headers_to_moloco_requests(
    captured: CaptureTransport,
) -> None:
    from sentry_sdk.tracing_utils import should_propagate_trace

    client = sentry_sdk.get_client()
    assert client.options["send_default_pii"] is False
    assert client.options["include_local_variables"] is False
    assert client.options["max_request_body_size"] == "never"
    assert not should_propagate_trace(client, "https://api.moloco.example/rmp/event/v1/x")


# -- no DSN: no Sentry ----------------------------------------------------------------------


def test_without_a_dsn_init_does_nothing_and_the_hooks_are_no_ops(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    monkeypatch.chdir(tmp_path)
    assert obs.init_sentry(settings(), component="worker") is False
    assert not sentry_sdk.get_client().is_active()
    obs.report_dead_letter(event_id="e", platform_id="p", reason="r", status="", message="")
    obs.report_circuit(platform_id="p", opened=True, reason="auth")


def test_the_dsn_comes_from_the_environment_then_from_dot_env(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("EVENTFWD_QUEUE=q\nSENTRY_DSN='http://k@127.0.0.1:1/2'\n")
    assert obs.sentry_dsn({}, dotenv) == "http://k@127.0.0.1:1/2"
    assert obs.sentry_dsn({"SENTRY_DSN": "http://e@127.0.0.1:1/3"}, dotenv).endswith("/3")
    assert obs.sentry_dsn({"SENTRY_DSN": ""}, dotenv) == ""  # set but empty: off
    assert obs.sentry_dsn({}, tmp_path / "missing") == ""


# -- beat check-ins -------------------------------------------------------------------------


def entry(name: str, every_s: float) -> Any:
    return SimpleNamespace(name=name, schedule=schedule(every_s), options={"expires": 5})


def test_a_sub_minute_entry_gets_one_check_in_per_minute(captured: CaptureTransport) -> None:
    monitor = BeatMonitor({"pump"}, slug_prefix="eventfwd", max_runtime_min=3)
    pump = entry("pump", 1.0)
    first = monitor.prepare(pump, 1000.0)
    assert first is not None
    assert pump.options["headers"]["sentry-monitor-check-in-id"] == first
    assert pump.options["headers"]["sentry-monitor-slug"] == "eventfwd-pump"
    assert monitor.prepare(pump, 1030.0) is None
    assert not any(k.startswith("sentry-monitor-") for k in pump.options["headers"])
    second = monitor.prepare(pump, 1059.0)
    assert second not in (None, first)
    sentry_sdk.flush()
    checkins = captured.items("check_in")
    assert [(c["monitor_slug"], c["status"]) for c in checkins] == [
        ("eventfwd-pump", "in_progress"),
        ("eventfwd-pump", "in_progress"),
    ]
    assert checkins[0]["monitor_config"]["schedule"] == {
        "type": "interval",
        "value": 1,
        "unit": "minute",
    }
    assert checkins[0]["monitor_config"]["max_runtime"] == 3


def test_a_long_interval_entry_is_checked_in_every_run_and_others_never(
    captured: CaptureTransport,
) -> None:
    monitor = BeatMonitor({"replay"}, slug_prefix="Shop.Queue", max_runtime_min=3)
    replay = entry("replay", 900.0)
    assert monitor.prepare(replay, 0.0) is not None
    assert monitor.prepare(replay, 900.0) is not None
    assert replay.options["headers"]["sentry-monitor-slug"] == "shop-queue-replay"
    assert replay.options["headers"]["sentry-monitor-config"]["schedule"]["value"] == 15
    other = entry("celery.backend_cleanup", 60.0)
    assert monitor.prepare(other, 0.0) is None
    assert other.options["headers"] == {}


def test_check_in_headers_are_rebuilt_so_a_shared_options_dict_never_goes_stale(
    captured: CaptureTransport,
) -> None:
    monitor = BeatMonitor({"pump"}, slug_prefix="eventfwd", max_runtime_min=3)
    pump = entry("pump", 1.0)
    monitor.prepare(pump, 0.0)
    headers_then = copy.deepcopy(pump.options["headers"])
    monitor.prepare(pump, 1.0)
    assert "sentry-monitor-check-in-id" in headers_then
    assert "sentry-monitor-check-in-id" not in pump.options["headers"]


def test_an_operator_action_is_logged_and_reported_once_grouped_by_action(
    captured: CaptureTransport, caplog: pytest.LogCaptureFixture
) -> None:
    from eventfwd.ops.audit import record_action

    with caplog.at_level("INFO", logger="eventfwd.audit"):
        record_action("dead.purge", by="alice", count=4, what="message 'page_id'", source="web")
    sentry_sdk.flush()
    (event,) = captured.items("event")
    assert event["level"] == "info"
    assert event["fingerprint"] == ["eventfwd", "operator", "dead.purge"]
    assert event["contexts"]["operator_action"]["count"] == 4
    assert event["tags"]["eventfwd.source"] == "web"
    (line,) = [r.getMessage() for r in caplog.records if r.name == "eventfwd.audit"]
    assert "action=dead.purge by=alice count=4 source=web" in line


# -- gaps found in review (issue #11, item 6) ------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        # a JSON body inside a JSON string, as an echoed payload or a repr shows it
        '{"body": "{\\"user_id\\": \\"' + USER_ID + '\\", \\"event_type\\": \\"HOME\\"}"}',
        'payload=\'{\\\\"custom_id\\\\": \\\\"' + USER_ID + "\\\\\"}'",
        'detail: {\\"device\\": {\\"persistent_id\\":\\"' + USER_ID + '\\"}}',
    ],
)
def test_identifiers_inside_escaped_json_strings_are_scrubbed(text: str) -> None:
    scrubbed = Scrubber().text(text)
    assert USER_ID not in scrubbed
    assert FILTERED in scrubbed


def test_sentinel_password_is_scrubbed_by_name_and_by_value() -> None:
    url = "sentinel://:m%40ster-Pa55@h1:26379/0?master_name=m&sentinel_password=s3nt1nel-Pa55"
    scrubber = Scrubber.from_settings(Settings(redis_url=url))
    for text in (
        f"connecting with sentinel_password=s3nt1nel-Pa55 to {url}",
        "auth failed for s3nt1nel-Pa55",
        '{"sentinel_password": "s3nt1nel-Pa55"}',
    ):
        assert "s3nt1nel-Pa55" not in scrubber.text(text)
    assert scrubber.value({"sentinel_password": "x"}) == {"sentinel_password": FILTERED}
    assert "m@ster-Pa55" not in scrubber.text("AUTH m@ster-Pa55 refused")


def test_a_percent_encoded_redis_password_is_scrubbed_decoded_too() -> None:
    scrubber = Scrubber.from_settings(Settings(redis_url="redis://:Pa%3Bss%40w0rd-long@h:6379/0"))
    assert "Pa;ss@w0rd-long" not in scrubber.text("WRONGPASS for Pa;ss@w0rd-long")
    assert "Pa%3Bss%40w0rd-long" not in scrubber.text("url redis://:Pa%3Bss%40w0rd-long@h")


def test_worker_log_lines_escape_control_characters_from_event_ids() -> None:
    record = logging.LogRecord(
        "worker.delivery", logging.INFO, __file__, 1, "delivered event_id=%s",
        ("abc\nERROR forged\x1b[2J",), None,
    )  # fmt: skip
    assert obs.EscapeControlCharacters().filter(record) is True
    message = record.getMessage()
    assert "\n" not in message and "\x1b" not in message
    assert message == "delivered event_id=abc\\nERROR forged\\x1b[2J"


def test_the_worker_installs_the_escaping_filter_on_its_log_handlers() -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler()
    root.addHandler(handler)
    try:
        obs.install_log_escaping()
        assert any(isinstance(f, obs.EscapeControlCharacters) for f in handler.filters)
        obs.install_log_escaping()  # idempotent
        assert sum(isinstance(f, obs.EscapeControlCharacters) for f in handler.filters) == 1
    finally:
        root.removeHandler(handler)
