"""Beat's scheduler, run by one beat at a time: a second beat waits on a lock as a standby.

`celery -A worker beat` (and `eventfwd beat`) use `LockedScheduler` (`beat_scheduler` in
`worker/app.py`). It is Celery's own persistent scheduler behind the lock `{p}:lock:beat`
(core/lock.py): the holder extends it every `lock_ttl_s / 5` and schedules as usual; a beat
that finds it held logs that it waits, sends nothing and does not even open its schedule file
(a second beat started by mistake in the same directory would share it), and tries again every
`lock_ttl_s / 5`. When the holder dies its lock expires after `lock_ttl_s` and a standby takes
over; a clean shutdown releases it at once. A holder that finds its lock taken (it stalled
longer than the TTL) stops sending and becomes a standby itself.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery.beat import PersistentScheduler

from eventfwd.core.connection import connect
from eventfwd.core.keys import Keys
from eventfwd.core.lock import Holder, RedisLock
from eventfwd.core.settings import Settings

log = logging.getLogger(__name__)

LOCK_NAME = "beat"
LOCK_TTL_PUMP_INTERVALS = 5
# Beat stalls for a moment when the broker blinks; shorter locks would only flap.
LOCK_TTL_MIN_S = 5.0
# The holder extends (and a standby retries) this many times per time to live.
LOCK_TAKES_PER_TTL = 5


def lock_ttl_s(settings: Settings) -> float:
    """How long the beat lock outlives its holder's last extension."""
    return max(LOCK_TTL_PUMP_INTERVALS * settings.pump_interval_s, LOCK_TTL_MIN_S)


def beat_lock_key(settings: Settings) -> str:
    return Keys(settings.key_prefix).lock(LOCK_NAME)


class LockedScheduler(PersistentScheduler):
    """Celery's persistent scheduler, active only while this beat holds `{p}:lock:beat`."""

    _store: Any  # the open shelve, or None (Celery's class attribute) while standing by

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._lock: RedisLock | None = None
        self._held_until_s = 0.0  # monotonic; the lock is surely ours until then
        self._next_take_s = 0.0
        self._active = False  # the schedule is open and entries are sent
        self._waiting_on: str | None = None  # the holder last logged while waiting
        super().__init__(*args, **kwargs)

    @property
    def lock_ttl_s(self) -> float:
        return lock_ttl_s(self.app.conf.eventfwd_settings)

    def setup_schedule(self) -> None:
        # Deferred to the first tick that holds the lock (`_activate`).
        pass

    def _lock_handle(self) -> RedisLock:
        if self._lock is None:
            settings: Settings = self.app.conf.eventfwd_settings
            client = connect(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
            self._lock = RedisLock(client, beat_lock_key(settings), ttl_s=self.lock_ttl_s)
        return self._lock

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Extend or take the lock when due; schedule while it is ours, else wait."""
        now_s = time.monotonic()
        every_s = self.lock_ttl_s / LOCK_TAKES_PER_TTL
        if now_s >= self._next_take_s:
            self._next_take_s = now_s + every_s
            self._take(now_s)
        if now_s >= self._held_until_s:
            if self._active:
                log.error("beat: the lock expired before it could be extended; standing by")
                self._deactivate()
            return every_s
        if not self._active:
            self._activate()
        interval_s = super().tick(*args, **kwargs)
        return min(interval_s, max(0.0, self._next_take_s - time.monotonic()))

    def _take(self, now_s: float) -> None:
        try:
            ours, holder = self._lock_handle().take()
        except redis.RedisError as exc:
            # Keep what we know: the lock stays ours until `_held_until_s` at most.
            log.warning("beat: could not reach Redis for the lock: %s", exc)
            return
        if ours:
            # Measured from before the call: the lock is ours for at least a TTL from then.
            self._held_until_s = now_s + self.lock_ttl_s * 0.9
            return
        self._held_until_s = 0.0
        if self._active:
            log.error("beat: %s took over the lock; standing by", _who(holder))
            self._deactivate()
        who = _who(holder)
        if who != self._waiting_on:
            self._waiting_on = who
            log.warning(
                "beat: standby, sending nothing: %s holds the lock %s; taking over within "
                "%.0fs of it stopping",
                who,
                self._lock_handle().key,
                self.lock_ttl_s * (1 + 1 / LOCK_TAKES_PER_TTL),
            )

    def _activate(self) -> None:
        # A takeover is news; a lone beat taking a free lock at start is not.
        log.log(
            logging.WARNING if self._waiting_on else logging.INFO,
            "beat: took the lock %s (it expires %.0fs after the last extension); scheduling",
            self._lock_handle().key,
            self.lock_ttl_s,
        )
        self._waiting_on = None
        super().setup_schedule()
        self._heap = None
        self._active = True

    def _deactivate(self) -> None:
        self._active = False
        self._close_store()

    def _close_store(self) -> None:
        if self._store is not None:
            self.sync()
            self._store.close()
            self._store = None

    def close(self) -> None:
        """Save the schedule and give the lock up, so a standby takes over at once."""
        self._close_store()
        self._active = False
        if self._lock is not None:
            try:
                if self._lock.release():
                    log.info("beat: released the lock %s", self._lock.key)
            except redis.RedisError as exc:
                log.warning("beat: could not release the lock (it expires by itself): %s", exc)

    @property
    def info(self) -> str:
        return f"{super().info}\n    . lock -> {beat_lock_key(self.app.conf.eventfwd_settings)}"


def _who(holder: Holder | None) -> str:
    return holder.describe() if holder else "an unknown holder"
