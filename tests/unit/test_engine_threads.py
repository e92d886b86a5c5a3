"""The delivery engine's threads with a fake ledger and deliverer: no Redis, no HTTP.

What the integration tests (tests/integration/test_delivery_batch.py, test_scheduler.py) cannot
see: how often the dispatcher loops while it stops, and what a failing `prepare()` leaves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from eventfwd.core.keys import Keys
from eventfwd.core.ledger import Claim, Wave
from worker.engine import DeliveryEngine
from worker.http_client import Response


class FakeBell:
    def blpop(self, keys: list[str], timeout: float) -> None:
        time.sleep(min(timeout, 0.05))


class FakeLedger:
    """Hands out `ids` in one wave, then nothing."""

    def __init__(self, ids: Sequence[str]) -> None:
        self.waves = [[Claim(i, f"t-{i}", "{}", "acme") for i in ids]]
        self.keys = Keys("eventfwd")
        self.client = FakeBell()

    def claim(self, engine_id: str, token: str, n: int, *, idle_ms: int) -> Wave:
        claims = self.waves.pop(0) if self.waves else []
        return Wave(claims, 0 if claims else idle_ms, False)


class FakeDeliverer:
    """prepare() raises for the id `bad`; post() takes `post_s`; settle() records."""

    def __init__(self, ledger: FakeLedger, post_s: float = 0.0) -> None:
        self.ledger = ledger
        self.post_s = post_s
        self.posted: list[str] = []
        self.settled: list[str] = []
        self.in_flight = threading.Event()

    def prepare(self, claim: Claim) -> Any:
        if claim.event_id == "bad":
            raise ConnectionError("Redis went away")
        return claim

    def post(self, send: Claim) -> Response:
        self.in_flight.set()
        time.sleep(self.post_s)
        self.posted.append(send.event_id)
        return Response(200, "", None, int(self.post_s * 1000))

    def settle(self, answered: Sequence[tuple[Claim, Response]]) -> dict[str, str]:
        self.settled += [send.event_id for send, _ in answered]
        return {send.event_id: "delivered" for send, _ in answered}


def engine_for(deliverer: FakeDeliverer, threads: int = 4) -> DeliveryEngine:
    return DeliveryEngine(deliverer, threads=threads, name="fake")  # type: ignore[arg-type]


def test_a_failing_prepare_strands_only_its_own_event() -> None:
    deliverer = FakeDeliverer(FakeLedger(["a", "bad", "c"]))
    outcomes = engine_for(deliverer).drain(timeout_s=10)
    assert outcomes == {"a": "delivered", "c": "delivered"}  # `bad` waits for its lease
    assert sorted(deliverer.posted) == ["a", "c"]


def test_stopping_waits_for_the_post_in_flight_without_spinning() -> None:
    deliverer = FakeDeliverer(FakeLedger(["slow"]), post_s=1.0)
    engine = engine_for(deliverer)
    turns = 0
    wait = engine._wait

    def counted(claim_at: float | None) -> None:
        nonlocal turns
        turns += 1
        wait(claim_at)

    engine._wait = counted  # type: ignore[method-assign]
    engine.start()
    assert deliverer.in_flight.wait(5)
    turns_before_stop = turns
    assert engine.stop(timeout_s=10)
    assert deliverer.settled == ["slow"]
    # a second in flight while stopping: woken by the completion, not looping on a past deadline
    assert turns - turns_before_stop < 20, turns - turns_before_stop
