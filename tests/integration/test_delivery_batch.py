"""A message's ids delivered in waves, in process (no Celery): `Deliverer.deliver_many`.

One claim call per wave, the POSTs side by side on the deliverer's threads against the fake
Moloco sink, deliveries acked together as they complete, anything else settled one by one.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import redis

from eventfwd.core.ledger import Claim, Ledger
from eventfwd.core.settings import Settings
from producers import EventProducer
from tests.conftest import example_events
from tests.support.stack import base_env
from worker.delivery import Deliverer
from worker.http_client import HttpClient, Response

pytestmark = pytest.mark.integration
PLATFORM = "acme"


class SpyLedger(Ledger):
    """A ledger that records its claim_many and ack_many calls (ids, and when an ack returned)."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        super().__init__(client, settings)
        self.claim_calls: list[list[str]] = []
        self.ack_calls: list[list[str]] = []
        self.acked_at: list[float] = []
        self._lock = threading.Lock()

    def claim_many(self, event_ids: Sequence[str], token: str) -> list[Claim]:
        with self._lock:
            self.claim_calls.append(list(event_ids))
        return super().claim_many(event_ids, token)

    def ack_many(self, event_ids: Sequence[str], token: str) -> tuple[list[int], list[str]]:
        answer = super().ack_many(event_ids, token)
        with self._lock:
            self.ack_calls.append(list(event_ids))
            self.acked_at.append(time.monotonic())
        return answer

    def acked_ids(self) -> list[str]:
        return [event_id for call in self.ack_calls for event_id in call]


class SpyHttp(HttpClient):
    """An HttpClient that records, per URL, when each POST started and returned."""

    def __init__(self, *, timeout_s: float, on_return: Callable[[str], None] | None = None) -> None:
        super().__init__(timeout_s=timeout_s)
        self.posts: list[tuple[str, float, float, Response]] = []
        self._on_return = on_return
        self._lock = threading.Lock()

    def post(self, url: str, api_key: str, body: str) -> Response:
        started = time.monotonic()
        response = super().post(url, api_key, body)
        if self._on_return is not None:
            self._on_return(url)
        with self._lock:
            self.posts.append((url, started, time.monotonic(), response))
        return response


@pytest.fixture
def batch_settings(redis_url: str, sink: Any) -> Settings:
    """A worker's settings against the sink, rate high enough not to throttle a test."""
    return Settings.from_mapping(base_env(redis_url, sink.url))


@pytest.fixture
def cleanup() -> Iterator[list[Any]]:
    """Deliverers and clients made by a test; their threads and connections closed after it."""
    made: list[Any] = []
    yield made
    for thing in made:
        if isinstance(thing, HttpClient):
            thing.close()
        executor = getattr(thing, "_threads", None)
        if executor is not None:
            executor.shutdown(wait=True)


def make_deliverer(
    settings: Settings,
    cleanup: list[Any],
    *,
    threads: int = 8,
    http: HttpClient | None = None,
    timeout_s: float = 2.0,
) -> tuple[Deliverer, SpyLedger]:
    ledger = SpyLedger(redis.Redis.from_url(settings.redis_url), settings)
    http = http or HttpClient(timeout_s=timeout_s)
    deliverer = Deliverer(settings, ledger, http, threads=threads)
    cleanup.extend([http, deliverer])
    return deliverer, ledger


def fresh_events(n: int) -> list[dict[str, Any]]:
    """`n` of Moloco's example events (cycling through the types), each with a new id."""
    examples = example_events()
    return [{**examples[i % len(examples)], "id": str(uuid.uuid4())} for i in range(n)]


def enqueue(settings: Settings, platform: str, n: int) -> list[str]:
    with EventProducer(settings=settings) as producer:
        return producer.enqueue_many(platform, fresh_events(n))


def accepted_ids(sink: Any) -> list[str]:
    return [e["event"]["id"] for e in sink.events()]


def interleave(*groups: list[str]) -> list[str]:
    out: list[str] = []
    for i in range(max(len(g) for g in groups)):
        out += [g[i] for g in groups if i < len(g)]
    return out


def test_a_wave_is_claimed_in_one_call_and_every_id_delivered_once(
    batch_settings: Settings, sink: Any, rclient: redis.Redis, cleanup: list[Any]
) -> None:
    ids = enqueue(batch_settings, PLATFORM, 20)
    deliverer, ledger = make_deliverer(batch_settings, cleanup, threads=20)

    outcomes = deliverer.deliver_many(ids)

    assert outcomes == ["delivered"] * 20
    assert ledger.claim_calls == [ids]
    # acked together as the answers come in: each id in exactly one ack call, no more calls
    # than answers
    assert 1 <= len(ledger.ack_calls) <= 20
    assert sorted(ledger.acked_ids()) == sorted(ids)
    assert sorted(accepted_ids(sink)) == sorted(ids)
    stats = sink.stats()
    assert (stats["requests"], stats["accepted"], stats["duplicates"]) == (20, 20, 0)
    assert rclient.keys("eventfwd:ev:*") == []
    assert rclient.zcard(f"eventfwd:sched:{PLATFORM}") == 0
    assert all(rclient.exists(f"eventfwd:done:{i}") for i in ids)
    assert rclient.hget("eventfwd:stats", "delivered") == "20"
    assert rclient.hget(f"eventfwd:pstats:{PLATFORM}", "delivered") == "20"


def test_one_thread_sends_the_wave_in_turn_and_acks_it_in_one_call(
    batch_settings: Settings, sink: Any, rclient: redis.Redis, cleanup: list[Any]
) -> None:
    ids = enqueue(batch_settings, PLATFORM, 5)
    ledger = SpyLedger(redis.Redis.from_url(batch_settings.redis_url), batch_settings)
    http = HttpClient(timeout_s=2.0)
    cleanup.append(http)
    deliverer = Deliverer(batch_settings, ledger, http, threads=1, wave_size=5)

    assert deliverer.deliver_many(ids) == ["delivered"] * 5
    assert ledger.claim_calls == [ids]
    assert ledger.ack_calls == [ids]
    assert sorted(accepted_ids(sink)) == sorted(ids)
    assert rclient.hget("eventfwd:stats", "delivered") == "5"


def test_more_ids_than_threads_go_in_several_waves(
    batch_settings: Settings, sink: Any, rclient: redis.Redis, cleanup: list[Any]
) -> None:
    ids = enqueue(batch_settings, PLATFORM, 21)
    deliverer, ledger = make_deliverer(batch_settings, cleanup, threads=8)

    outcomes = deliverer.deliver_many(ids)

    assert outcomes == ["delivered"] * 21
    assert len(ledger.claim_calls) == math.ceil(21 / 8)
    assert ledger.claim_calls == [ids[0:8], ids[8:16], ids[16:21]]
    assert sorted(ledger.acked_ids()) == sorted(ids)
    # a wave is settled before the next is claimed: no ack holds ids of two waves
    for call in ledger.ack_calls:
        assert len({ids.index(i) // 8 for i in call}) == 1
    stats = sink.stats()
    assert (stats["requests"], stats["accepted"], stats["duplicates"]) == (21, 21, 0)
    assert rclient.hget("eventfwd:stats", "delivered") == "21"
    assert deliverer.deliver_many([]) == []


def test_a_mixed_wave_settles_each_outcome_in_order_and_sends_nothing_twice(
    batch_settings: Settings, sink: Any, rclient: redis.Redis, cleanup: list[Any]
) -> None:
    sink.add_fault({"fault": 400, "platform": "bad", "message": "missing page_id"})
    sink.add_fault({"fault": 503, "platform": "flaky"})
    good = enqueue(batch_settings, PLATFORM, 6)
    bad = enqueue(batch_settings, "bad", 3)
    flaky = enqueue(batch_settings, "flaky", 3)
    ids = interleave(good, bad, flaky)
    expected = {**dict.fromkeys(good, "delivered"), **dict.fromkeys(bad, "rejected")}
    expected.update(dict.fromkeys(flaky, "retry"))
    deliverer, ledger = make_deliverer(batch_settings, cleanup, threads=12)

    started_ms = time.time() * 1000
    outcomes = deliverer.deliver_many(ids)

    assert outcomes == [expected[i] for i in ids]
    assert ledger.claim_calls == [ids]
    assert sorted(ledger.acked_ids()) == sorted(good)  # only deliveries are acked
    for event_id in bad:
        env = rclient.hgetall(f"eventfwd:ev:{event_id}")
        assert (env["state"], env["reason"], env["last_status"], env["last_message"]) == (
            "dead",
            "rejected",
            "400",
            "missing page_id",
        )
        assert env["attempts"] == "1"
        assert rclient.zscore("eventfwd:dead", event_id) is not None
    for event_id in flaky:
        env = rclient.hgetall(f"eventfwd:ev:{event_id}")
        assert (env["state"], env["attempts"], env["last_status"]) == ("scheduled", "1", "503")
        assert env["last_message"] == "service unavailable"
        assert "token" not in env
        due = rclient.zscore("eventfwd:sched:flaky", event_id)
        assert due is not None and due >= started_ms + 0.9 * batch_settings.retry_base_s * 1000
    assert sorted(accepted_ids(sink)) == sorted(good)
    stats = sink.stats()
    assert stats["requests"] == 12  # each id sent exactly once
    assert stats["by_status"] == {"200": 6, "400": 3, "503": 3}
    assert stats["duplicates"] == 0
    assert rclient.hget("eventfwd:stats", "delivered") == "6"
    assert rclient.hget("eventfwd:circuit:flaky", "state") != "open"  # 3 failures < threshold


def test_ids_that_cannot_be_claimed_are_answered_without_a_send(
    batch_settings: Settings, sink: Any, rclient: redis.Redis, cleanup: list[Any]
) -> None:
    ids = enqueue(batch_settings, PLATFORM, 4)
    earlier, held, fresh = ids[0], ids[1], ids[2:]
    deliverer, ledger = make_deliverer(batch_settings, cleanup, threads=8)
    assert deliverer.deliver(earlier) == "delivered"
    assert ledger.claim(held, "another-worker").status == "ok"
    wave = [fresh[0], "no-such-id", earlier, held, fresh[1], fresh[1]]

    outcomes = deliverer.deliver_many(wave)

    # an id delivered before answers "delivered" without a send; the same id twice in one
    # wave is sent once (the second claim finds it busy)
    assert outcomes == ["delivered", "gone", "delivered", "busy", "delivered", "busy"]
    assert ledger.claim_calls[-1] == wave
    assert sorted(ledger.acked_ids()) == sorted([earlier, *fresh])
    assert sorted(accepted_ids(sink)) == sorted([earlier, *fresh])
    assert sink.stats()["requests"] == 3
    assert rclient.hget(f"eventfwd:ev:{held}", "token") == "another-worker"  # untouched
    assert not rclient.exists("eventfwd:done:no-such-id")


def test_a_slow_answer_times_out_alone_while_the_rest_are_acked_at_once(
    redis_url: str, sink: Any, rclient: redis.Redis, cleanup: list[Any]
) -> None:
    timeout_s = 1.0
    settings = Settings.from_mapping(
        base_env(redis_url, sink.url, EVENTFWD_HTTP_TIMEOUT_SECONDS=str(timeout_s))
    )
    sink.add_fault({"fault": "hang", "platform": "slow"})
    fast = enqueue(settings, PLATFORM, 7)
    (slow,) = enqueue(settings, "slow", 1)
    ids = [fast[0], fast[1], slow, *fast[2:]]
    done_when_slow_returned: dict[str, bool] = {}

    def on_return(url: str) -> None:
        # runs on the slow POST's thread as it gives up: the fast ones must be acked already
        if "/platforms/slow/" in url:
            done_when_slow_returned.update(
                {i: bool(rclient.exists(f"eventfwd:done:{i}")) for i in fast}
            )

    http = SpyHttp(timeout_s=timeout_s, on_return=on_return)
    deliverer, ledger = make_deliverer(settings, cleanup, threads=8, http=http)

    started = time.monotonic()
    outcomes = deliverer.deliver_many(ids)
    took = time.monotonic() - started

    assert outcomes == ["delivered", "delivered", "retry", *["delivered"] * 5]
    assert done_when_slow_returned == dict.fromkeys(fast, True)
    ((_url, _slow_started, slow_returned, slow_response),) = [
        p for p in http.posts if "/platforms/slow/" in p[0]
    ]
    assert (slow_response.status, slow_response.message) == (None, "timeout")
    assert ledger.acked_at and max(ledger.acked_at) < slow_returned
    assert sorted(ledger.acked_ids()) == sorted(fast)
    assert took >= timeout_s * 0.9  # the wave ends when its slowest answer does
    env = rclient.hgetall(f"eventfwd:ev:{slow}")
    assert (env["state"], env["attempts"], env["last_status"], env["last_message"]) == (
        "scheduled",
        "1",
        "",
        "timeout",
    )
    assert sorted(accepted_ids(sink)) == sorted(fast)  # the hung request was not accepted
    assert sink.stats()["requests"] == 8


def test_a_connection_reset_is_retried_as_a_connection_error(
    batch_settings: Settings, sink: Any, rclient: redis.Redis, cleanup: list[Any]
) -> None:
    sink.add_fault({"fault": "reset", "platform": "flaky"})
    good = enqueue(batch_settings, PLATFORM, 3)
    (flaky,) = enqueue(batch_settings, "flaky", 1)
    ids = [good[0], flaky, *good[1:]]
    deliverer, ledger = make_deliverer(batch_settings, cleanup, threads=8)

    assert deliverer.deliver_many(ids) == ["delivered", "retry", "delivered", "delivered"]
    env = rclient.hgetall(f"eventfwd:ev:{flaky}")
    assert (env["state"], env["attempts"], env["last_status"]) == ("scheduled", "1", "")
    assert str(env["last_message"]).startswith("connection error (")
    assert sorted(ledger.acked_ids()) == sorted(good)
    assert sorted(accepted_ids(sink)) == sorted(good)
    assert sink.stats()["by_fault"] == {"reset": 1}


def test_molocos_429_with_retry_after_throttles_the_platform_without_spending_an_attempt(
    batch_settings: Settings, sink: Any, rclient: redis.Redis, cleanup: list[Any]
) -> None:
    sink.add_fault({"fault": 429, "retry_after_s": 3, "platform": "busy"})
    good = enqueue(batch_settings, PLATFORM, 2)
    busy = enqueue(batch_settings, "busy", 2)
    ids = interleave(good, busy)
    deliverer, ledger = make_deliverer(batch_settings, cleanup, threads=8)

    started_ms = time.time() * 1000
    outcomes = deliverer.deliver_many(ids)

    assert outcomes == ["delivered", "throttled", "delivered", "throttled"]
    paused = rclient.hget("eventfwd:rate:busy", "paused_until_ms")
    assert paused is not None and float(paused) >= started_ms + 2900  # Retry-After: 3
    for event_id in busy:
        env = rclient.hgetall(f"eventfwd:ev:{event_id}")
        assert (env["state"], env["attempts"], env["last_status"]) == ("scheduled", "0", "429")
        due = rclient.zscore("eventfwd:sched:busy", event_id)
        assert due is not None and due >= started_ms + 2900
    assert rclient.hget("eventfwd:stats", "throttled") == "2"
    assert rclient.hget(f"eventfwd:rate:{PLATFORM}", "paused_until_ms") is None
    assert sorted(ledger.acked_ids()) == sorted(good)
    # paused: the next claim of the platform does not send
    (again,) = enqueue(batch_settings, "busy", 1)
    assert deliverer.deliver(again) == "throttled"
    assert sink.stats()["by_status"] == {"200": 2, "429": 2}


def test_a_platform_without_an_api_key_opens_its_circuit_and_keeps_every_event(
    batch_settings: Settings, sink: Any, rclient: redis.Redis, cleanup: list[Any]
) -> None:
    ids = enqueue(batch_settings, PLATFORM, 3)
    keyless = batch_settings.replace(moloco_api_key="")
    deliverer, ledger = make_deliverer(keyless, cleanup)

    outcomes = deliverer.deliver_many(ids)

    # one claim, no send: the first refusal opens the circuit (reason config), all are parked
    assert outcomes == ["parked"] * 3
    assert ledger.claim_calls == [ids] and ledger.ack_calls == []
    assert sink.stats()["requests"] == 0
    circuit = rclient.hgetall(f"eventfwd:circuit:{PLATFORM}")
    assert (circuit["state"], circuit["reason"]) == ("open", "config")
    assert f"no Moloco API key configured for platform {PLATFORM}" in circuit["last_message"]
    for event_id in ids:
        env = rclient.hgetall(f"eventfwd:ev:{event_id}")
        assert (env["state"], env["attempts"]) == ("scheduled", "0")
