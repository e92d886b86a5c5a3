"""The sink, a fake Moloco User Event API, driven over loopback with `requests`."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from eventfwd.devkit.sink import SinkServer
from eventfwd.devkit.sink.faults import FaultSpecError, parse_fault_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "tests" / "fixtures" / "moloco_examples.jsonl"
API_PATH = "/rmp/event/v1/platforms/{}/userevents"
KEY = {"x-api-key": "dev-key"}


def now_ms() -> int:
    return int(time.time() * 1000)


def examples() -> list[dict[str, Any]]:
    """The eight example bodies, with timestamps moved to now."""
    bodies = [json.loads(line) for line in EXAMPLES.read_text().splitlines() if line.strip()]
    for body in bodies:
        body["timestamp"] = str(now_ms())
    return bodies


def example(event_type: str) -> dict[str, Any]:
    return next(body for body in examples() if body["event_type"] == event_type)


@pytest.fixture
def sink() -> Iterator[SinkServer]:
    with SinkServer() as server:
        yield server


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False
        yield session


def post(
    http: requests.Session,
    sink: SinkServer,
    body: Any,
    *,
    platform: str = "p1",
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body)
    return http.post(
        sink.url + API_PATH.format(platform),
        data=data,
        headers=KEY if headers is None else headers,
        timeout=kwargs.pop("timeout", 5),
        **kwargs,
    )


def assert_error(response: requests.Response, status: int, code: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"code": code, "message": message, "details": []}


# -- accepted events -------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", [body["event_type"] for body in examples()])
def test_each_example_body_is_accepted_with_an_empty_object(
    sink: SinkServer, http: requests.Session, event_type: str
) -> None:
    response = post(http, sink, example(event_type))

    assert response.status_code == 200
    assert response.json() == {}
    assert sink.stats()["requests"] == 1
    assert sink.stats()["accepted"] == 1


def test_accepted_events_are_recorded_in_memory_and_in_the_record_file(
    tmp_path: Path, http: requests.Session
) -> None:
    record = tmp_path / "events.jsonl"
    bodies = examples()
    with SinkServer(record_path=record) as sink:
        for body in bodies:
            assert post(http, sink, body, platform="acme").status_code == 200
        recent = sink.events()
        stats = sink.stats()

    assert stats["requests"] == 8
    assert stats["accepted"] == 8
    assert stats["unique_ids"] == 8
    assert stats["per_platform"] == {"acme": {"requests": 8, "accepted": 8}}
    assert [r["event"] for r in recent] == bodies
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [line["event"] for line in lines] == bodies
    assert {line["platform_id"] for line in lines} == {"acme"}
    assert all(abs(line["received_at_ms"] - now_ms()) < 60_000 for line in lines)


def test_only_the_newest_events_are_kept_in_memory(http: requests.Session) -> None:
    bodies = examples()[:3]
    with SinkServer(events_kept=2) as sink:
        for body in bodies:
            post(http, sink, body)
        kept = [record["event"]["id"] for record in sink.events()]
        assert sink.stats()["accepted"] == 3

    assert kept == [body["id"] for body in bodies[1:]]


def test_an_item_with_only_an_item_group_id_is_accepted(
    sink: SinkServer, http: requests.Session
) -> None:
    body = example("ADD_TO_CART")
    body["items"] = [{"item_group_id": "grp-1", "quantity": 1}]

    assert post(http, sink, body).status_code == 200
    assert sink.stats()["accepted"] == 1


def test_a_numeric_timestamp_and_unknown_fields_are_accepted(
    sink: SinkServer, http: requests.Session
) -> None:
    body = example("HOME")
    body["timestamp"] = now_ms()
    body["not_in_the_schema"] = {"anything": True}
    body["device"]["ip"] = "203.0.113.7"

    assert post(http, sink, body).status_code == 200
    assert sink.stats()["requests"] == 1


def test_repeated_event_ids_are_counted_as_duplicates(
    sink: SinkServer, http: requests.Session
) -> None:
    home, land = example("HOME"), example("LAND")
    for body in (home, home, land, home):
        assert post(http, sink, body).status_code == 200

    stats = sink.stats()
    assert stats["requests"] == 4
    assert stats["accepted"] == 4
    assert stats["unique_ids"] == 2
    assert stats["duplicates"] == 1
    assert stats["duplicate_deliveries"] == 2


# -- authentication and routing --------------------------------------------------------------


def test_a_request_without_an_api_key_is_unauthenticated(
    sink: SinkServer, http: requests.Session
) -> None:
    response = post(http, sink, example("HOME"), headers={})

    assert_error(response, 401, 16, "missing api key")
    assert sink.stats()["requests"] == 1
    assert sink.stats()["accepted"] == 0


def test_a_request_with_a_wrong_api_key_is_forbidden(
    sink: SinkServer, http: requests.Session
) -> None:
    response = post(http, sink, example("HOME"), headers={"x-api-key": "nope"})

    assert_error(response, 403, 7, "invalid api key")
    assert sink.stats()["by_status"] == {"403": 1}


def test_an_unknown_platform_is_not_found_when_platforms_are_configured(
    http: requests.Session,
) -> None:
    with SinkServer(api_key="k2", platforms=["acme"]) as sink:
        unknown = post(http, sink, example("HOME"), platform="other", headers={"x-api-key": "k2"})
        known = post(http, sink, example("HOME"), platform="acme", headers={"x-api-key": "k2"})
        stats = sink.stats()

    assert_error(unknown, 404, 5, "platform other not found")
    assert known.status_code == 200
    assert stats["requests"] == 2
    assert stats["accepted"] == 1


def test_any_other_path_is_not_found(sink: SinkServer, http: requests.Session) -> None:
    response = http.post(sink.url + "/rmp/event/v1/userevents", json={}, headers=KEY)

    assert_error(response, 404, 5, "Not Found")
    assert sink.stats()["requests"] == 1


def test_a_get_on_the_event_path_is_not_allowed(sink: SinkServer, http: requests.Session) -> None:
    response = http.get(sink.url + API_PATH.format("p1"), headers=KEY)

    assert_error(response, 405, 12, "Method Not Allowed")
    assert response.headers["Allow"] == "POST"
    assert sink.stats()["requests"] == 1


def test_a_body_over_64_kib_is_refused_and_the_connection_stays_usable(
    sink: SinkServer, http: requests.Session
) -> None:
    body = example("HOME")
    body["page_id"] = "x" * (64 * 1024)

    too_large = post(http, sink, body)
    after = post(http, sink, example("HOME"))

    assert_error(too_large, 413, 3, "request body larger than 65536 bytes")
    assert after.status_code == 200
    assert sink.stats()["requests"] == 2


# -- body validation -------------------------------------------------------------------------


def _without_identifiers(body: dict[str, Any]) -> None:
    body.pop("user_id", None)
    body.pop("custom_id", None)
    body.get("device", {}).pop("persistent_id", None)


NO_IDENTIFIER = "no available valid identifier to construct Moloco advertising ID"
SERVER_RULES = [
    ("HOME", _without_identifiers, NO_IDENTIFIER),
    ("HOME", lambda b: b.update(user_id="", device={"persistent_id": ""}), NO_IDENTIFIER),
    ("SEARCH", lambda b: b.pop("search_query"), "missing search_query"),
    ("PAGE_VIEW", lambda b: b.pop("page_id"), "missing page_id"),
    ("ADD_TO_CART", lambda b: b.update(items=[{"quantity": 1}]),
     "invalid item: either id or item_group_id must be set"),
    ("PURCHASE", lambda b: b.pop("items"), "invalid item: either id or item_group_id must be set"),
    ("ITEM_PAGE_VIEW", lambda b: b.update(items=[]),
     "invalid item: either id or item_group_id must be set"),
    ("HOME", lambda b: b.update(timestamp=str(now_ms() // 1000)), "invalid timestamp"),
    ("HOME", lambda b: b.update(timestamp=str(now_ms() + 120_000)), "invalid timestamp"),
    ("ITEM_PAGE_VIEW", lambda b: b["device"].update(os="windows"),
     "device os must contain ios or android for the app channel type"),
    ("ITEM_PAGE_VIEW", lambda b: b["device"].pop("os"),
     "device os must contain ios or android for the app channel type"),
    ("HOME", lambda b: b.update(event_type="UNKNOWN_EVENT_TYPE"),
     "unsupported event_type UNKNOWN_EVENT_TYPE"),
    ("HOME", lambda b: b.update(channel_type="UNKNOWN_CHANNEL_TYPE"),
     "unsupported channel_type UNKNOWN_CHANNEL_TYPE"),
]  # fmt: skip


@pytest.mark.parametrize(("event_type", "breaks", "message"), SERVER_RULES)
def test_each_server_rule_answers_400_with_molocos_message(
    sink: SinkServer, http: requests.Session, event_type: str, breaks: Any, message: str
) -> None:
    body = example(event_type)
    breaks(body)

    assert_error(post(http, sink, body), 400, 3, message)
    assert sink.stats()["requests"] == 1
    assert sink.stats()["accepted"] == 0


def test_a_timestamp_a_little_in_the_future_is_tolerated(
    sink: SinkServer, http: requests.Session
) -> None:
    body = example("HOME")
    body["timestamp"] = str(now_ms() + 30_000)

    assert post(http, sink, body).status_code == 200
    assert sink.stats()["requests"] == 1


SCHEMA_BREAKS = [
    (lambda b: b.pop("channel_type"), "missing required field channel_type"),
    (lambda b: b.update(event_type="CLICK"), 'invalid value for enum field event_type: "CLICK"'),
    (lambda b: b.update(user_id="u" * 129), "user_id is longer than 128 characters"),
    (lambda b: b.update(timestamp="yesterday"),
     'invalid value for int64 field timestamp: "yesterday"'),
    (lambda b: b.update(timestamp=1.5), "invalid value for int64 field timestamp: 1.5"),
    (lambda b: b.update(device="phone"), 'invalid value for object field device: "phone"'),
    (lambda b: b.update(revenue={"amount": 1}), "missing required field revenue.currency"),
    (lambda b: b.update(revenue={"currency": "XXX", "amount": 1}),
     'invalid value for enum field revenue.currency: "XXX"'),
    (lambda b: b.update(items=[{"id": "1", "quantity": "two"}]),
     'invalid value for int32 field items[0].quantity: "two"'),
    (lambda b: b.update(items=[{"id": 1193}]), "invalid value for string field items[0].id: 1193"),
]  # fmt: skip


@pytest.mark.parametrize(("breaks", "message"), SCHEMA_BREAKS)
def test_a_body_that_breaks_the_schema_is_refused(
    sink: SinkServer, http: requests.Session, breaks: Any, message: str
) -> None:
    body = example("HOME")
    breaks(body)

    assert_error(post(http, sink, body), 400, 3, message)
    assert sink.stats()["requests"] == 1


def test_a_body_that_is_not_an_object_is_refused(sink: SinkServer, http: requests.Session) -> None:
    assert_error(post(http, sink, b"[1, 2]"), 400, 3, "request body must be a JSON object")
    assert sink.stats()["requests"] == 1


def test_a_body_that_is_not_json_is_refused(sink: SinkServer, http: requests.Session) -> None:
    response = post(http, sink, b"{not json")

    assert response.status_code == 400
    assert response.json()["message"].startswith("invalid JSON body")
    assert sink.stats()["requests"] == 1


# -- faults ----------------------------------------------------------------------------------


def test_a_status_fault_answers_its_status_with_retry_after_for_count_requests(
    sink: SinkServer, http: requests.Session
) -> None:
    sink.add_fault({"fault": 429, "retry_after_s": 2, "count": 2})

    answers = [post(http, sink, example("HOME")) for _ in range(3)]

    for throttled in answers[:2]:
        assert_error(throttled, 429, 8, "request denied by throttler, try again later")
        assert throttled.headers["Retry-After"] == "2"
    assert answers[2].status_code == 200
    stats = sink.stats()
    assert stats["requests"] == 3
    assert stats["by_status"] == {"200": 1, "429": 2}
    assert stats["by_fault"] == {"429": 2}
    assert stats["accepted"] == 1


def test_a_status_fault_can_carry_its_own_message(sink: SinkServer, http: requests.Session) -> None:
    sink.add_fault({"fault": 500, "message": "boom", "count": 1})

    assert_error(post(http, sink, example("HOME")), 500, 13, "boom")
    assert sink.stats()["requests"] == 1


def test_a_latency_fault_delays_the_normal_answer(sink: SinkServer, http: requests.Session) -> None:
    sink.add_fault({"fault": "latency", "latency_ms": 300, "count": 1})

    started = time.monotonic()
    slow = post(http, sink, example("HOME"))
    slow_s = time.monotonic() - started
    started = time.monotonic()
    fast = post(http, sink, example("LAND"))
    fast_s = time.monotonic() - started

    assert slow.status_code == fast.status_code == 200
    assert slow_s >= 0.3
    assert fast_s < 0.2
    assert sink.stats()["requests"] == 2
    assert sink.stats()["accepted"] == 2


def test_the_base_latency_applies_to_every_answer(http: requests.Session) -> None:
    with SinkServer(latency_ms=150) as sink:
        started = time.monotonic()
        for _ in range(2):
            assert post(http, sink, example("HOME")).status_code == 200
        elapsed_s = time.monotonic() - started
        assert sink.stats()["requests"] == 2

    assert elapsed_s >= 0.3


def test_a_reset_fault_makes_requests_raise_a_connection_error(
    sink: SinkServer, http: requests.Session
) -> None:
    sink.add_fault({"fault": "reset", "count": 1})

    with pytest.raises(requests.ConnectionError):
        post(http, sink, example("HOME"))
    assert post(http, sink, example("HOME")).status_code == 200
    stats = sink.stats()
    assert stats["requests"] == 2
    assert stats["by_fault"] == {"reset": 1}
    assert stats["by_status"] == {"200": 1}


def test_a_hang_fault_makes_the_client_time_out(sink: SinkServer, http: requests.Session) -> None:
    sink.add_fault("hang:count=1")

    with pytest.raises(requests.ReadTimeout):
        post(http, sink, example("HOME"), timeout=(2, 0.3))
    assert post(http, sink, example("HOME")).status_code == 200
    stats = sink.stats()
    assert stats["requests"] == 2
    assert stats["accepted"] == 1
    assert stats["by_fault"] == {"hang": 1}


def test_a_bounded_hang_closes_the_connection_without_an_answer(
    sink: SinkServer, http: requests.Session
) -> None:
    sink.add_fault({"fault": "hang", "hang_s": 0.2, "count": 1})

    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        post(http, sink, example("HOME"), timeout=5)

    assert time.monotonic() - started < 2
    assert sink.stats()["requests"] == 1


def test_a_malformed_fault_answers_200_with_a_body_that_is_not_json(
    sink: SinkServer, http: requests.Session
) -> None:
    sink.add_fault({"fault": "malformed", "count": 1})

    response = post(http, sink, example("HOME"))

    assert response.status_code == 200
    with pytest.raises(requests.JSONDecodeError):
        response.json()
    stats = sink.stats()
    assert stats["requests"] == 1
    assert stats["accepted"] == 1  # the request was handled; only the answer is garbled
    assert stats["by_fault"] == {"malformed": 1}


def test_a_truncated_fault_cuts_the_answer_short(sink: SinkServer, http: requests.Session) -> None:
    sink.add_fault({"fault": "truncated", "count": 1})

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        post(http, sink, example("HOME"))
    assert post(http, sink, example("LAND")).status_code == 200
    assert sink.stats()["requests"] == 2


def test_a_time_window_fault_drops_when_its_seconds_run_out(
    sink: SinkServer, http: requests.Session
) -> None:
    sink.add_fault({"fault": 503, "seconds": 0.3})

    during = [post(http, sink, example("HOME")).status_code for _ in range(2)]
    time.sleep(0.4)
    after = post(http, sink, example("HOME")).status_code

    assert during == [503, 503]
    assert after == 200
    assert sink.faults() == []
    assert sink.stats()["requests"] == 3


def test_faults_stack_first_in_first_out(sink: SinkServer, http: requests.Session) -> None:
    sink.add_fault({"fault": 500, "count": 1})
    sink.add_fault({"fault": 503, "count": 2})

    statuses = [post(http, sink, example("HOME")).status_code for _ in range(4)]

    assert statuses == [500, 503, 503, 200]
    assert sink.stats()["requests"] == 4


def test_a_platform_scoped_fault_leaves_other_platforms_alone(
    sink: SinkServer, http: requests.Session
) -> None:
    sink.add_fault({"fault": 503, "count": 1, "platform": "acme"})

    other = post(http, sink, example("HOME"), platform="other").status_code
    acme = post(http, sink, example("HOME"), platform="acme").status_code
    acme_again = post(http, sink, example("HOME"), platform="acme").status_code

    assert (other, acme, acme_again) == (200, 503, 200)
    stats = sink.stats()
    assert stats["requests"] == 3
    assert stats["per_platform"] == {
        "acme": {"requests": 2, "accepted": 1},
        "other": {"requests": 1, "accepted": 1},
    }


def _mix_run(sink: SinkServer, http: requests.Session, seed: int) -> list[int]:
    sink.reset()
    sink.add_fault(f"mix:500=0.3,503=0.2,429=0.1:seed={seed}:count=40")
    return [post(http, sink, example("HOME")).status_code for _ in range(40)]


def test_a_seeded_mix_draws_the_same_sequence_every_time(
    sink: SinkServer, http: requests.Session
) -> None:
    first = _mix_run(sink, http, seed=7)
    second = _mix_run(sink, http, seed=7)
    other_seed = _mix_run(sink, http, seed=8)

    assert first == second
    assert first != other_seed
    assert {200, 500, 503} <= set(first)
    assert sink.stats()["requests"] == 40


def test_a_mix_of_connection_faults_is_survivable_by_a_retrying_client(
    sink: SinkServer, http: requests.Session
) -> None:
    sink.add_fault(
        {
            "fault": "mix",
            "seed": 3,
            "count": 30,
            "mix": [{"fault": "reset", "weight": 0.3}, {"fault": "truncated", "weight": 0.2}],
        }
    )
    outcomes: list[str] = []
    for _ in range(30):
        try:
            outcomes.append(str(post(http, sink, example("HOME")).status_code))
        except requests.RequestException as exc:
            outcomes.append(type(exc).__name__)

    stats = sink.stats()
    assert stats["requests"] == 30
    assert outcomes.count("200") == 30 - sum(stats["by_fault"].values())
    assert stats["by_fault"]["reset"] == outcomes.count("ConnectionError")


# -- control API -----------------------------------------------------------------------------


def test_the_control_api_manages_faults_and_is_not_counted(
    sink: SinkServer, http: requests.Session
) -> None:
    control = sink.url + "/_sink"

    assert http.get(control + "/health").json() == {"status": "ok"}
    added = http.post(control + "/faults", json={"fault": 503, "count": 1}).json()
    grammar = http.post(control + "/faults", json="429:retry_after=1:seconds=60").json()
    listed = http.get(control + "/faults").json()["faults"]
    refused = http.post(control + "/faults", json={"fault": "explode"})
    cleared = http.delete(control + "/faults").json()

    assert added == {"id": 1, "fault": 503, "count_left": 1}
    assert grammar["fault"] == 429 and grammar["retry_after_s"] == 1
    assert [rule["id"] for rule in listed] == [1, 2]
    assert refused.status_code == 400
    assert "explode" in refused.json()["message"]
    assert cleared == {"cleared": 2}
    assert http.get(control + "/nothing").status_code == 404
    assert http.get(control + "/reset").status_code == 405
    assert sink.stats()["requests"] == 0


def test_the_control_api_serves_stats_and_recent_events_and_resets(
    sink: SinkServer, http: requests.Session
) -> None:
    bodies = examples()[:3]
    for body in bodies:
        post(http, sink, body)
    post(http, sink, example("HOME"), headers={})
    control = sink.url + "/_sink"

    stats = http.get(control + "/stats").json()
    latest = http.get(control + "/events", params={"limit": 2}).json()["events"]
    http.post(control + "/faults", json={"fault": 500})
    reset = http.post(control + "/reset")
    after = http.get(control + "/stats").json()

    assert stats["requests"] == 4
    assert stats["by_status"] == {"200": 3, "401": 1}
    assert stats["accepted"] == 3
    assert [record["event"]["id"] for record in latest] == [b["id"] for b in bodies[1:]]
    assert reset.status_code == 200
    assert after["requests"] == after["accepted"] == after["faults_active"] == 0
    assert http.get(control + "/events").json() == {"events": []}


# -- HTTP on the wire ------------------------------------------------------------------------


def _raw_exchange(sink: SinkServer, payload: bytes, expect_answers: int) -> bytes:
    with socket.create_connection(("127.0.0.1", sink.port), timeout=5) as conn:
        conn.sendall(payload)
        received = b""
        while received.count(b"HTTP/1.1 ") < expect_answers or not received.endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def test_pipelined_and_chunked_requests_are_answered_in_order(sink: SinkServer) -> None:
    body = json.dumps(example("HOME")).encode()
    path = API_PATH.format("p1")
    plain = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nx-api-key: dev-key\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    chunked = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nx-api-key: dev-key\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode() + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    unauthorised = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}".encode()

    received = _raw_exchange(sink, plain + chunked + unauthorised, expect_answers=3)

    statuses = re.findall(rb"HTTP/1\.1 (\d{3})", received)
    assert statuses == [b"200", b"200", b"401"]
    assert sink.stats()["requests"] == 3


def test_an_unreadable_request_gets_400_and_the_connection_closes(sink: SinkServer) -> None:
    received = _raw_exchange(sink, b"garbage\r\n\r\n", expect_answers=1)

    assert received.startswith(b"HTTP/1.1 400 ")
    assert b"Connection: close" in received
    assert sink.stats()["requests"] == 1


# -- fault grammar ---------------------------------------------------------------------------

GRAMMAR = [
    ("500:count=10", {"fault": 500, "count": 10}),
    ("429:retry_after=2:seconds=30", {"fault": 429, "retry_after_s": 2, "seconds": 30.0}),
    ("reset:count=5", {"fault": "reset", "count": 5}),
    ("hang:count=1", {"fault": "hang", "count": 1}),
    ("timeout:hang_s=3", {"fault": "hang", "hang_s": 3.0}),
    ("latency:ms=250:platform=acme", {"fault": "latency", "latency_ms": 250, "platform": "acme"}),
    ("503:message=down for maintenance", {"fault": 503, "message": "down for maintenance"}),
    (
        "mix:500=0.1,429=0.05,reset=0.02,timeout=0.01:retry_after=4:seed=7",
        {
            "fault": "mix",
            "seed": 7,
            "mix": [
                {"fault": 500, "weight": 0.1, "retry_after_s": 4},
                {"fault": 429, "weight": 0.05, "retry_after_s": 4},
                {"fault": "reset", "weight": 0.02},
                {"fault": "hang", "weight": 0.01},
            ],
        },
    ),
]


@pytest.mark.parametrize(("text", "rule"), GRAMMAR)
def test_the_fault_grammar_reads_into_the_json_form(text: str, rule: dict[str, Any]) -> None:
    assert parse_fault_spec(text) == rule


@pytest.mark.parametrize(
    "text", ["600", "explode:count=1", "500:count=0", "500:bogus=1", "mix", "latency", "reset:ms=5"]
)
def test_a_fault_spec_that_makes_no_sense_is_refused(text: str) -> None:
    with pytest.raises(FaultSpecError):
        parse_fault_spec(text)


# -- the command -----------------------------------------------------------------------------


def test_the_sink_command_serves_until_sigterm_and_exits_cleanly(tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    env = {**os.environ, "EVENTFWD_MOLOCO_API_KEY": "s3cret-key", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "eventfwd.devkit.sink", "--port", "0", "--quiet"]
    command += ["--record", str(record), "--fault", "503:count=1"]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        match = re.fullmatch(
            r"sink listening on (http://127\.0\.0\.1:\d+) \(api key from (.+)\)\n", ready
        )
        assert match, ready
        assert match.group(2) == "EVENTFWD_MOLOCO_API_KEY"
        url = match.group(1) + API_PATH.format("p1")
        headers = {"x-api-key": "s3cret-key"}
        with requests.Session() as http:
            http.trust_env = False
            first = http.post(url, json=example("HOME"), headers=headers, timeout=5)
            second = http.post(url, json=example("HOME"), headers=headers, timeout=5)
            stats = http.get(match.group(1) + "/_sink/stats", timeout=5).json()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert (first.status_code, second.status_code) == (503, 200)
    assert stats["requests"] == 2
    assert process.returncode == 0, err
    assert "requests=2 accepted=1" in out
    assert "s3cret-key" not in ready + out + err
    assert len(record.read_text().splitlines()) == 1


def test_the_sink_command_refuses_a_fault_it_cannot_read() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "eventfwd.devkit.sink", "--port", "0", "--fault", "explode:count=1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
    )

    assert result.returncode == 2
    assert "unknown fault 'explode'" in result.stderr
