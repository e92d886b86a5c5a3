"""End to end: producer → Redis → real Celery worker and beat processes → the fake Moloco sink.

Every test counts the requests the sink saw.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from producers import EventProducer
from tests.conftest import example_events
from tests.support.ledger import backlog
from tests.support.stack import wait_for

pytestmark = pytest.mark.integration
PLATFORM = "acme"


def accepted_ids(sink: Any) -> list[str]:
    return [e["event"]["id"] for e in sink.events()]


def dead_letter(rclient: redis.Redis, event_id: str) -> dict[str, str]:
    env = rclient.hgetall(f"eventfwd:ev:{event_id}")
    return env if env.get("state") == "dead" else {}


def test_every_event_type_is_delivered_with_the_exact_body(make_stack, sink, rclient) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack()
    stack.worker()
    producer = EventProducer(settings=stack.settings())
    events = example_events()
    ids = producer.enqueue_many(PLATFORM, events)
    wait_for(lambda: len(sink.events()) == len(events), 30, what="all 8 events at the sink")
    received = {e["event"]["id"]: e for e in sink.events()}
    for event_id, sent in zip(ids, events, strict=True):
        assert received[event_id]["platform_id"] == PLATFORM
        assert received[event_id]["event"] == producer.validate(sent).wire
    assert sink.stats()["requests"] == len(events)
    wait_for(lambda: backlog(rclient, PLATFORM) == 0, 10, what="empty backlog")
    assert rclient.hget("eventfwd:stats", "delivered") == str(len(events))
    assert all(rclient.exists(f"eventfwd:done:{i}") for i in ids)


def test_server_errors_are_retried_with_backoff_until_delivered(make_stack, sink) -> None:  # type: ignore[no-untyped-def]
    sink.add_fault({"fault": 503, "count": 2})
    stack = make_stack()
    stack.worker()
    stack.beat()
    started = time.monotonic()
    event_id = EventProducer(settings=stack.settings()).enqueue(PLATFORM, example_events()[0])
    wait_for(lambda: accepted_ids(sink) == [event_id], 30, what="delivery after two 503s")
    # base 0.2 s: the retries wait at least 0.2 s, then 0.4 s
    assert time.monotonic() - started >= 0.6
    assert sink.stats()["requests"] == 3
    assert sink.stats()["by_status"] == {"503": 2, "200": 1}


def test_a_refused_payload_is_sent_once_and_dead_lettered_with_molocos_message(
    make_stack, sink, rclient
) -> None:  # type: ignore[no-untyped-def]
    sink.add_fault(
        {"fault": 400, "message": "invalid item: either id or item_group_id must be set"}
    )
    stack = make_stack()
    stack.worker()
    stack.beat()
    event_id = EventProducer(settings=stack.settings()).enqueue(PLATFORM, example_events()[4])
    dead = wait_for(lambda: dead_letter(rclient, event_id), 30, what="a dead letter")
    assert dead["reason"] == "rejected"
    assert dead["last_status"] == "400"
    assert dead["last_message"] == "invalid item: either id or item_group_id must be set"
    time.sleep(1.5)  # beat keeps pumping: a permanent refusal is never retried
    assert sink.stats()["requests"] == 1


def test_exhausted_retries_dead_letter_then_an_operator_replay_delivers(
    make_stack, sink, rclient
) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from eventfwd.cli.main import cli

    sink.add_fault({"fault": 500, "count": 3})
    stack = make_stack()
    env = {"EVENTFWD_MAX_ATTEMPTS": "3"}
    stack.worker(**env)
    stack.beat(**env)
    event_id = EventProducer(settings=stack.settings()).enqueue(PLATFORM, example_events()[2])
    dead = wait_for(lambda: dead_letter(rclient, event_id), 30, what="retries exhausted")
    assert (dead["reason"], dead["attempts"], dead["last_status"]) == (
        "retries_exhausted",
        "3",
        "500",
    )
    assert sink.stats()["requests"] == 3

    result = CliRunner().invoke(cli, ["dead", "replay", event_id], env=stack.env(**env))
    assert result.exit_code == 0, result.output
    assert "replayed 1" in result.output
    wait_for(lambda: accepted_ids(sink) == [event_id], 30, what="delivery after replay")
    assert sink.stats()["requests"] == 4


def test_beat_replays_exhausted_dead_letters_but_never_refused_ones(
    make_stack, sink, rclient
) -> None:  # type: ignore[no-untyped-def]
    env = {"EVENTFWD_MAX_ATTEMPTS": "2", "EVENTFWD_REPLAY_INTERVAL_SECONDS": "1"}
    stack = make_stack()
    producer = EventProducer(settings=stack.settings(**env))
    events = example_events()
    sink.add_fault({"fault": 400, "count": 1, "message": "missing page_id"})
    stack.worker(**env)
    stack.beat(**env)
    refused = producer.enqueue(PLATFORM, events[0])
    wait_for(lambda: dead_letter(rclient, refused), 30, what="the refusal")
    sink.add_fault({"fault": 502, "count": 2})
    flaky = producer.enqueue(PLATFORM, events[1])
    wait_for(lambda: flaky in accepted_ids(sink), 30, what="the periodic replay")
    # delivered: the envelope goes with the ack, a moment after the sink's receipt
    wait_for(lambda: not rclient.exists(f"eventfwd:ev:{flaky}"), 10, what="the ack")
    assert int(rclient.hget("eventfwd:stats", "replayed")) >= 1
    time.sleep(1.5)  # more replay rounds pass; the refusal stays a dead letter
    assert rclient.hget(f"eventfwd:ev:{refused}", "state") == "dead"
    assert sink.stats()["requests"] == 1 + 2 + 1


def test_retry_after_on_429_is_honoured_without_spending_attempts(
    make_stack, sink, rclient
) -> None:  # type: ignore[no-untyped-def]
    sink.add_fault({"fault": 429, "retry_after_s": 2, "count": 1})
    env = {"EVENTFWD_MAX_ATTEMPTS": "1"}
    stack = make_stack()
    stack.worker(**env)
    stack.beat(**env)
    started = time.monotonic()
    event_id = EventProducer(settings=stack.settings(**env)).enqueue(PLATFORM, example_events()[3])
    wait_for(lambda: accepted_ids(sink) == [event_id], 30, what="delivery after the 429")
    assert time.monotonic() - started >= 2.0
    assert sink.stats()["requests"] == 2
    assert rclient.hget("eventfwd:stats", "throttled") == "1"


def test_a_timeout_and_a_connection_reset_are_retried(make_stack, sink) -> None:  # type: ignore[no-untyped-def]
    sink.add_fault({"fault": "hang", "count": 1})
    sink.add_fault({"fault": "reset", "count": 1})
    env = {"EVENTFWD_HTTP_TIMEOUT_SECONDS": "0.5"}
    stack = make_stack()
    stack.worker(**env)
    stack.beat(**env)
    event_id = EventProducer(settings=stack.settings(**env)).enqueue(PLATFORM, example_events()[5])
    wait_for(lambda: accepted_ids(sink) == [event_id], 30, what="delivery after a hang and a reset")
    assert sink.stats()["requests"] == 3


def test_a_wrong_api_key_opens_the_circuit_and_keeps_every_event(make_stack, sink, rclient) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from eventfwd.cli.main import cli

    bad = {"EVENTFWD_MOLOCO_API_KEY": "rotated-away"}
    stack = make_stack()
    worker = stack.worker(**bad)
    stack.beat(**bad)
    producer = EventProducer(settings=stack.settings())
    ids = producer.enqueue_many(PLATFORM, example_events())
    wait_for(
        lambda: rclient.hget(f"eventfwd:circuit:{PLATFORM}", "state") == "open",
        30,
        what="open circuit",
    )
    time.sleep(0.5)
    refused = sink.stats()["by_status"].get("403", 0)
    assert refused <= len(ids)  # only what was already on its way when the circuit opened
    time.sleep(1.5)
    assert sink.stats()["by_status"].get("403", 0) == refused  # then nothing
    assert rclient.hget(f"eventfwd:circuit:{PLATFORM}", "reason") == "auth"
    assert rclient.zcard("eventfwd:dead") == 0
    worker.stop()
    stack.worker(name="w2")  # the key is fixed
    result = CliRunner().invoke(cli, ["circuit", "reset", PLATFORM], env=stack.env())
    assert result.exit_code == 0, result.output
    wait_for(lambda: sorted(accepted_ids(sink)) == sorted(ids), 30, what="the backlog drained")
    # the sink's receipt comes before the ack: the ledger empties a moment later
    wait_for(
        lambda: (
            json.loads(CliRunner().invoke(cli, ["stats", "--json"], env=stack.env()).output)[
                "backlog"
            ]
            == 0
        ),
        10,
        what="an empty backlog",
    )
