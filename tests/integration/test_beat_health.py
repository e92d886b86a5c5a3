"""`eventfwd beat-health`, the compose healthcheck of beat: 0 while the pump's tick is fresh."""

from __future__ import annotations

import time

import pytest
import redis

from eventfwd.core.keys import Keys
from tests.support.dead import run
from worker.heartbeat import record_beat_tick

pytestmark = pytest.mark.integration


def test_beat_health_fails_without_a_tick_then_passes_and_fails_again_when_stale(
    redis_url: str, rclient: redis.Redis
) -> None:
    assert run(redis_url, "beat-health").exit_code == 1
    record_beat_tick(rclient, Keys("eventfwd"))
    fresh = run(redis_url, "beat-health")
    assert fresh.exit_code == 0 and "last tick 0s ago" in fresh.output
    record_beat_tick(rclient, Keys("eventfwd"), now_ms=int(time.time() * 1000) - 300_000)
    assert run(redis_url, "beat-health").exit_code == 1
    assert run(redis_url, "beat-health", "--max-age-seconds", "600").exit_code == 0
