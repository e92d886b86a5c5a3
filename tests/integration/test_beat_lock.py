"""One beat at a time (worker/beat.py): the lock's holder schedules, a standby sends nothing.

In-process schedulers against the suite's redis-server; `test_beat_tasks.py` runs real beats.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from eventfwd.core.lock import read_holder
from eventfwd.core.settings import Settings
from worker.app import create_app
from worker.beat import LockedScheduler, lock_ttl_s

pytestmark = pytest.mark.integration

LOCK = "eventfwd:lock:beat"


class Beat:
    """A scheduler as `celery beat` builds it, with its sends recorded instead of published."""

    def __init__(self, settings: Settings, path: Path) -> None:
        app = create_app(settings)
        self.sent: list[str] = []
        self.scheduler = LockedScheduler(app=app, schedule_filename=str(path))

        def apply_entry(entry: Any, producer: Any = None) -> None:
            self.sent.append(entry.name)

        self.scheduler.apply_entry = apply_entry  # type: ignore[method-assign]

    def tick(self, for_s: float = 0.5) -> float:
        """Run beat's loop for `for_s` (the pump is due every 0.2 s); the last interval."""
        deadline = time.monotonic() + for_s
        while True:
            interval_s = self.scheduler.tick()
            if time.monotonic() > deadline:
                return interval_s
            time.sleep(max(0.0, min(interval_s, 0.05)))

    def retry_now(self) -> None:
        self.scheduler._next_take_s = 0.0


@pytest.fixture
def beat_settings(settings: Settings) -> Settings:
    return settings.replace(pump_interval_s=0.2)


@pytest.fixture
def beats(beat_settings: Settings, tmp_path: Path) -> Iterator[tuple[Beat, Beat]]:
    pair = Beat(beat_settings, tmp_path / "a"), Beat(beat_settings, tmp_path / "b")
    yield pair
    for beat in pair:
        beat.scheduler.close()


def test_the_lock_lasts_a_few_pump_intervals_and_never_less_than_the_minimum() -> None:
    assert lock_ttl_s(Settings(pump_interval_s=1)) == 5
    assert lock_ttl_s(Settings(pump_interval_s=4)) == 20
    assert lock_ttl_s(Settings(pump_interval_s=0.2)) == 5


def test_only_the_holder_sends_and_a_clean_close_hands_over(
    beats: tuple[Beat, Beat], rclient: redis.Redis, tmp_path: Path
) -> None:
    first, second = beats
    first.tick()
    holder = read_holder(rclient, LOCK)
    assert holder is not None and holder.token == first.scheduler._lock.token  # type: ignore[union-attr]
    assert first.sent[:1] == ["pump"]
    assert second.tick() <= 1.0  # a standby retries every fifth of the TTL
    assert second.sent == []
    assert not (tmp_path / "b").exists() and not list(tmp_path.glob("b.*"))  # never opened
    first.scheduler.close()
    assert read_holder(rclient, LOCK) is None
    second.retry_now()
    second.tick()
    assert second.sent[:1] == ["pump"]
    assert read_holder(rclient, LOCK).token == second.scheduler._lock.token  # type: ignore[union-attr]


def test_a_standby_takes_over_when_the_holders_lock_expires(
    beats: tuple[Beat, Beat], rclient: redis.Redis, tmp_path: Path
) -> None:
    first, second = beats
    first.tick()
    second.tick()
    assert second.sent == []
    rclient.delete(LOCK)  # as Redis expires it a TTL after the holder died
    second.retry_now()
    second.tick()
    assert second.sent[:1] == ["pump"]
    # The old holder comes back from its pause: it finds the lock taken and sends nothing more.
    sent = len(first.sent)
    first.retry_now()
    first.tick()
    assert len(first.sent) == sent and not first.scheduler._active
    first.scheduler.close()  # does not release its successor's lock
    assert read_holder(rclient, LOCK).token == second.scheduler._lock.token  # type: ignore[union-attr]
