"""Waves of ready events delivered in process (no Celery): `DeliveryEngine.drain`.

The engine claims as many ready events as it has threads free (one claim call per wave, by the
scheduler's policy), POSTs them side by side against the fake Moloco sink, acks deliveries
together as they complete and settles anything else one by one.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import redis

from eventfwd.core.ledger import Delivery, Ledger, Wave
from eventfwd.core.settings import PlatformOverride, Settings
from producers import EventProducer
from tests.conftest import example_events
from tests.support.stack import base_env
from worker.delivery import Deliverer
from worker.engine import DeliveryEngine
from worker.http_client import HttpClient, Response

pytestmark = pytest.mark.integration
PLATFORM = "acme"


class SpyLedger(Ledger):
    """A ledger that records what each claim handed out and each ack (ids, when it returned)."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        super().__init__(client, settings)
        self.claims: list[list[str]] = []
        self.ack_calls: list[list[str]] = []
        self.acked_at: list[float] = []
        self._lock = threading.Lock()

    def claim(self, engine_id: str, token: str, max_events: int, *, idle_ms: int = 1000) -> Wave:
        wave = super().claim(engine_id, token, max_events, idle_ms=idle_ms)
        with self._lock:
            self.claims.append([c.event_id for c in wave.claims])
        return wave

    def ack(self, deliveries: Sequence[Delivery]) -> tuple[list[int], list[str]]:
        answer = super().ack(deliveries)
        with self._lock:
            self.ack_calls.append([d.event_id for d in deliveries])
            self.acked_at.append(time.monotonic())
        return answer

    def waves(self) -> list[list[str]]:
        """The claims that handed out events."""
        return [ids for ids in self.claims if ids]

    def acked_ids(self) -> list[str]:
        return [event_id for call in self.ack_calls for event_id in call]


class SpyHttp(HttpClient):
    """An HttpClient that records, per URL, when each POST started and returned, and how many
    were on their way at once."""

    def __init__(self, *, timeout_s: float, on_return: Callable[[str], None] | None = None) -> None:
        super().__init__(timeout_s=timeout_s, pool_size=20)
        self.posts: list[tuple[str, float, float, Response]] = []
        self.most_at_once = 0
        self._at_once = 0
        self._on_return = on_return
        self._lock = threading.Lock()

    def post(self, url: str, api_key: str, body: str) -> Response:
        started = time.monotonic()
        with self._lock:
            self._at_once += 1
            self.most_at_once = max(self.most_at_once, self._at_once)
        response = super().post(url, api_key, body)
        with self._lock:
            self._at_once -= 1
        if self._on_return is not None:
            self._on_return(url)
        with self._lock:
            self.posts.append((url, started, time.monotonic(), response))
        return response


@pytest.fixture
def batch_settings(redis_url: str, sink: Any) -> Settings:
    """A worker's settings against the sink, its rate and in-flight cap high enough not to hold
    a test back."""
    return Settings.from_mapping(base_env(redis_url, sink.url, EVENTFWD_CONCURRENCY_INITIAL="50"))


@pytest.fixture
def cleanup() -> Iterator[list[Any]]:
    """Engines and clients made by a test; their threads and connections closed after it."""
    made: list[Any] = []
    yield made
    for thing in made:
        if isinstance(thing, HttpClient):
            thing.close()
        if isinstance(thing, DeliveryEngine):
            thing._pool.shutdown(wait=True)


def make_engine(
    settings: Settings,
    cleanup: list[Any],
    *,
    threads: int = 8,
    http: HttpClient | None = None,
    timeout_s: float = 2.0,
) -> tuple[DeliveryEngine, SpyLedger]:
    ledger = SpyLedger(redis.Redis.from_url(settings.redis_url), settings)
    http = http or HttpClient(timeout_s=timeout_s, pool_size=threads)
    engine = DeliveryEngine(Deliverer(settings, ledger, http), threads=threads, name="test-engine")
    cleanup.extend([http, engine])
    return engine, ledger


def fresh_events(n: int) -> list[dict[str, Any]]:
    """`n` of Moloco's example events (cycling through the types), each with a new id."""
    examples = example_events()
    return [{**examples[i % len(examples)], "id": str(uuid.uuid4())} for i in range(n)]


def enqueue(settings: Settings, platform: str, n: int) -> list[str]:
    with EventProducer(settings=settings) as producer:
        return producer.enqueue_many(platform, fresh_events(n))


def accepted_ids(sink: Any) -> list[str]:
    return [e["event"]["id"] for e in sink.events()]


def test_a_wave_is_claimed_in_one_call_and_every_id_delivered_once(
    batch_settings: Settings, sink: Any, rclient: redis.Redis, cleanup: list[Any]
) -> None:
    ids = enqueue(batch_settings, PLATFORM, 20)
    engine, ledger = make_engine(batch_settings, cleanup, threads=20)

    outcomes = engine.drain(timeout_s=30)

    assert outcomes == dict.fromkeys(ids, "delivered")
    assert [sorted(wave) for wave in ledger.waves()] == [sorted(ids)]
    # acked together as the answers come in: each id in exactly one ack call
    assert 1 <= len(ledger.ack_calls) <= 20
    assert sorted(ledger.acked_ids()) == sorted(ids)
    assert sorted(accepted_ids(sink)) == sorted(ids)
    stats = sink.stats()
    assert (stats["requests"], stats["accepted"], stats["duplicates"]) == (20, 20, 0)
    assert rclient.keys("eventfwd:ev:*") == []
    for kind in ("ready", "sched", "inflight"):
        assert rclient.zcard(f"eventfwd:{kind}:{PLATFORM}") == 0
    assert all(rclient.exists(f"eventfwd:done:{i}") for i in ids)
    assert rclient.hget("eventfwd:stats", "delivered") == "20"
    assert rclient.hget(f"eventfwd:pstats:{PLATFORM}", "delivered") == "20"


def test_one_thread_sends_one_event_at_a_time(
    batch_settings: Settings, sink: Any, rclient: redis.Redis, cleanup: list[Any]
) -> None:
    ids = enqueue(batch_settings, PLATFORM, 5)
    engine, ledger = make_engine(batch_settings, cleanup, threads=1)

    assert engine.drain(timeout_s=30) == dict.fromkeys(ids, "delivered")
    waves = ledger.waves()
    assert [len(wave) for wave in waves] == [1] * 5
    assert sorted(i for wave in waves for i in wave) == sorted(ids)
    assert sink.stats()["requests"] == 5
    assert rclient.hget("eventfwd:stats", "delivered") == "5"


def test_more_events_than_threads_go_in_several_waves(
    batch_settings: Settings, sink: Any, rclient: redis.Redis, cleanup: list[Any]
) -> None:
    ids = enqueue(batch_settings, PLATFORM, 21)
    engine, ledger = make_engine(batch_settings, cleanup, threads=8)

    outcomes = engine.drain(timeout_s=30)

    assert outcomes == dict.fromkeys(ids, "delivered")
    waves = ledger.waves()
    assert len(waves) >= 3
    assert all(len(wave) <= 8 for wave in waves)  # no more than the threads free
    claimed = [i for wave in waves for i in wave]
    assert sorted(claimed) == sorted(ids)  # each claimed once
    assert sorted(ledger.acked_ids()) == sorted(ids)
    stats = sink.stats()
    assert (stats["requests"], stats["accepted"], stats["duplicates"]) == (21, 21, 0)
    assert rclient.hget("eventfwd:stats", "delivered") == "21"


def test_a_platforms_in_flight_cap_bounds_its_posts_whatever_the_threads(
    redis_url: str, sink: Any, rclient: redis.Redis, cleanup: list[Any]
) -> None:
    env = {"EVENTFWD_CONCURRENCY_INITIAL": "4", "EVENTFWD_CONCURRENCY_MAX": "4"}
    settings = Settings.from_mapping(base_env(redis_url, sink.url, **env))
    sink.add_fault({"fault": "latency", "latency_ms": 100})
    ids = enqueue(settings, PLATFORM, 12)
    http = SpyHttp(timeout_s=2.0)
    engine, ledger = make_engine(settings, cleanup, threads=12, http=http)

    assert engine.drain(timeout_s=30) == dict.fromkeys(ids, "delivered")
    assert http.most_at_once == 4
    assert all(len(wave) <= 4 for wave in ledger.waves())
    assert sink.stats()["requests"] == 12


def test_a_mixed_wave_settles_each_outcome_and_sends_nothing_twice(
    batch_settings: Settings, sink: Any, rclient: redis.Redis, cleanup: list[Any]
) -> None:
    sink.add_fault({"fault": 400, "platform": "bad", "message": "missing page_id"})
    sink.add_fault({"fault": 503, "platform": "flaky"})
    good = enqueue(batch_settings, PLATFORM, 6)
    bad = enqueue(batch_settings, "bad", 3)
    flaky = enqueue(batch_settings, "flaky", 3)
    engine, ledger = make_engine(batch_settings, cleanup, threads=12)

    started_ms = time.time() * 1000
    outcomes = engine.drain(timeout_s=30)

    assert outcomes == {
        **dict.fromkeys(good, "delivered"),
        **dict.fromkeys(bad, "rejected"),
        **dict.fromkeys(flaky, "retry"),
    }
    assert [sorted(wave) for wave in ledger.waves()] == [sorted(good + bad + flaky)]
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
    assert stats["requests"] == 12  # each event sent exactly once
    assert stats["by_status"] == {"200": 6, "400": 3, "503": 3}
    assert stats["duplicates"] == 0
    assert rclient.hget("eventfwd:stats", "delivered") == "6"
    assert rclient.hget("eventfwd:circuit:flaky", "state") != "open"  # 3 failures < threshold


def test_an_event_held_by_another_engine_is_not_sent_again(
    batch_settings: Settings, sink: Any, rclient: redis.Redis, cleanup: list[Any]
) -> None:
    (held,) = enqueue(batch_settings, PLATFORM, 1)
    other = Ledger(redis.Redis.from_url(batch_settings.redis_url), batch_settings)
    assert [c.event_id for c in other.claim("another-engine", "theirs", 10).claims] == [held]
    fresh = enqueue(batch_settings, PLATFORM, 3)
    engine, ledger = make_engine(batch_settings, cleanup, threads=8)

    assert engine.drain(timeout_s=30) == dict.fromkeys(fresh, "delivered")
    assert sorted(ledger.acked_ids()) == sorted(fresh)
    assert sink.stats()["requests"] == 3
    assert rclient.hget(f"eventfwd:ev:{held}", "token") == "theirs"  # untouched


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
    done_when_slow_returned: dict[str, bool] = {}

    def on_return(url: str) -> None:
        # runs on the slow POST's thread as it gives up: the fast ones must be acked already
        if "/platforms/slow/" in url:
            done_when_slow_returned.update(
                {i: bool(rclient.exists(f"eventfwd:done:{i}")) for i in fast}
            )

    http = SpyHttp(timeout_s=timeout_s, on_return=on_return)
    engine, ledger = make_engine(settings, cleanup, threads=8, http=http)

    started = time.monotonic()
    outcomes = engine.drain(timeout_s=30)
    took = time.monotonic() - started

    assert outcomes == {**dict.fromkeys(fast, "delivered"), slow: "retry"}
    assert [sorted(wave) for wave in ledger.waves()] == [sorted([*fast, slow])]
    assert done_when_slow_returned == dict.fromkeys(fast, True)
    ((_url, _slow_started, slow_returned, slow_response),) = [
        p for p in http.posts if "/platforms/slow/" in p[0]
    ]
    assert (slow_response.status, slow_response.message) == (None, "timeout")
    assert ledger.acked_at and max(ledger.acked_at) < slow_returned
    assert sorted(ledger.acked_ids()) == sorted(fast)
    assert took >= timeout_s * 0.9  # the drain ends when the slowest answer does
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
    engine, ledger = make_engine(batch_settings, cleanup, threads=8)

    assert engine.drain(timeout_s=30) == {**dict.fromkeys(good, "delivered"), flaky: "retry"}
    env = rclient.hgetall(f"eventfwd:ev:{flaky}")
    assert (env["state"], env["attempts"], env["last_status"]) == ("scheduled", "1", "")
    assert str(env["last_message"]).startswith("connection error (")
    assert sorted(ledger.acked_ids()) == sorted(good)
    assert sorted(accepted_ids(sink)) == sorted(good)
    stats = sink.stats()
    assert (stats["requests"], stats["by_fault"]) == (4, {"reset": 1})


def test_molocos_429_with_retry_after_throttles_the_platform_without_spending_an_attempt(
    batch_settings: Settings, sink: Any, rclient: redis.Redis, cleanup: list[Any]
) -> None:
    sink.add_fault({"fault": 429, "retry_after_s": 3, "platform": "busy"})
    good = enqueue(batch_settings, PLATFORM, 2)
    busy = enqueue(batch_settings, "busy", 2)
    engine, ledger = make_engine(batch_settings, cleanup, threads=8)

    started_ms = time.time() * 1000
    outcomes = engine.drain(timeout_s=30)

    assert outcomes == {**dict.fromkeys(good, "delivered"), **dict.fromkeys(busy, "throttled")}
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
    # paused: a new event of the platform is kept ready, not sent
    (again,) = enqueue(batch_settings, "busy", 1)
    assert engine.drain(timeout_s=30) == {}
    assert rclient.hget(f"eventfwd:ev:{again}", "state") == "ready"
    assert sink.stats()["by_status"] == {"200": 2, "429": 2}
    assert sink.stats()["requests"] == 4


def test_a_platform_without_an_api_key_opens_its_circuit_and_keeps_every_event(
    batch_settings: Settings, sink: Any, rclient: redis.Redis, cleanup: list[Any]
) -> None:
    ids = enqueue(batch_settings, PLATFORM, 3)
    keyless = batch_settings.replace(moloco_api_key="")
    engine, ledger = make_engine(keyless, cleanup)

    outcomes = engine.drain(timeout_s=30)

    # one claim, no send: the first refusal opens the circuit (reason config), all are parked
    assert outcomes == dict.fromkeys(ids, "parked")
    assert [sorted(wave) for wave in ledger.waves()] == [sorted(ids)]
    assert ledger.ack_calls == []
    assert sink.stats()["requests"] == 0
    circuit = rclient.hgetall(f"eventfwd:circuit:{PLATFORM}")
    assert (circuit["state"], circuit["reason"]) == ("open", "config")
    assert f"no Moloco API key configured for platform {PLATFORM}" in circuit["last_message"]
    for event_id in ids:
        env = rclient.hgetall(f"eventfwd:ev:{event_id}")
        assert (env["state"], env["attempts"], env["lane"]) == ("scheduled", "0", "backlog")
    assert rclient.hget("eventfwd:stats", "circuit_opened") == "1"


def test_an_event_of_a_platform_outside_the_allow_list_is_never_sent(
    batch_settings: Settings, sink: Any, rclient: redis.Redis, cleanup: list[Any]
) -> None:
    # enqueued by a producer that had no allow-list; the worker has one
    stray = enqueue(batch_settings, "stray", 2)
    allowed = enqueue(batch_settings, PLATFORM, 2)
    engine, _ledger = make_engine(
        batch_settings.replace(allowed_platforms=frozenset({PLATFORM})), cleanup
    )

    outcomes = engine.drain(timeout_s=30)

    assert outcomes == {
        **dict.fromkeys(stray, "not_allowed"),
        **dict.fromkeys(allowed, "delivered"),
    }
    assert sink.stats()["requests"] == 2 and sorted(accepted_ids(sink)) == sorted(allowed)
    for event_id in stray:
        assert rclient.hget(f"eventfwd:ev:{event_id}", "reason") == "not_allowed"
        assert rclient.hget(f"eventfwd:ev:{event_id}", "attempts") == "0"


def test_without_an_allow_list_an_override_goes_to_the_first_platform_id_that_uses_it(
    batch_settings: Settings, sink: Any, rclient: redis.Redis, cleanup: list[Any]
) -> None:
    # acme-eu, acme.eu and ACME_EU all read EVENTFWD_PLATFORM_ACME_EU_*: with no allow-list to
    # say which exists, the fleet pins the key to the first id sent and refuses look-alikes
    settings = batch_settings.replace(
        platforms={"ACME_EU": PlatformOverride(api_key=batch_settings.moloco_api_key)}
    )
    owner = enqueue(settings, "acme-eu", 2)
    engine, _ledger = make_engine(settings, cleanup)
    assert engine.drain(timeout_s=30) == dict.fromkeys(owner, "delivered")
    assert rclient.hgetall("eventfwd:override_owners") == {"ACME_EU": "acme-eu"}

    look_alikes = enqueue(settings, "acme.eu", 1) + enqueue(settings, "ACME_EU", 1)
    plain = enqueue(settings, "shop", 1)  # no override: not concerned
    # a fresh engine (another worker process) reads the owner from Redis, not from memory
    engine, _ledger = make_engine(settings, cleanup)
    outcomes = engine.drain(timeout_s=30)

    assert outcomes == {**dict.fromkeys(look_alikes, "not_allowed"), plain[0]: "delivered"}
    assert sorted(accepted_ids(sink)) == sorted(owner + plain)
    for event_id in look_alikes:
        envelope = rclient.hgetall(f"eventfwd:ev:{event_id}")
        assert (envelope["reason"], envelope["attempts"]) == ("not_allowed", "0")
        assert "EVENTFWD_PLATFORM_ACME_EU_*" in envelope["last_message"]
        assert "platform acme-eu uses" in envelope["last_message"]
    assert rclient.hgetall("eventfwd:override_owners") == {"ACME_EU": "acme-eu"}

    # with an allow-list the settings decide at start, and nothing is pinned
    rclient.delete("eventfwd:override_owners")
    allowed = settings.replace(allowed_platforms=frozenset({"acme-eu"}))
    more = enqueue(allowed, "acme-eu", 1)
    engine, _ledger = make_engine(allowed, cleanup)
    assert engine.drain(timeout_s=30) == {more[0]: "delivered"}
    assert rclient.exists("eventfwd:override_owners") == 0


def test_round_trips_and_delivery_delays_are_counted_in_the_platforms_histograms(
    batch_settings: Settings, sink: Any, rclient: redis.Redis, cleanup: list[Any]
) -> None:
    from eventfwd.core.latency import parse

    sink.add_fault({"fault": 503, "count": 1})
    enqueue(batch_settings, PLATFORM, 3)
    engine, _ledger = make_engine(batch_settings, cleanup, threads=1)

    engine.drain(timeout_s=30)

    hist = parse(rclient.hgetall(f"eventfwd:hist:{PLATFORM}"))
    assert hist.rtt["2xx"].count == 2 and hist.rtt["5xx"].count == 1
    assert hist.e2e.count == 2 and hist.e2e.sum_ms >= 0
    assert sink.stats()["requests"] == 3
