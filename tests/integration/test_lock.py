"""The Redis lock (core/lock.py) against the suite's redis-server: take, extend, expire, release."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
import redis

from eventfwd.core.lock import RedisLock, read_holder, run_alone
from tests.support.stack import wait_for

pytestmark = pytest.mark.integration

KEY = "eventfwd:lock:test"


def test_a_free_lock_is_taken_and_says_who_holds_it(rclient: redis.Redis) -> None:
    lock = RedisLock(rclient, KEY, ttl_s=5)
    before_ms = int(time.time() * 1000)
    ours, holder = lock.take()
    assert ours and holder is not None
    assert (holder.host, holder.pid) == (socket.gethostname(), os.getpid())
    assert holder.token == lock.token
    assert before_ms - 1000 <= holder.since_ms <= before_ms + 1000
    assert read_holder(rclient, KEY) == holder
    assert 4000 < rclient.pttl(KEY) <= 5000


def test_a_held_lock_is_refused_to_another_and_left_unchanged(rclient: redis.Redis) -> None:
    first, second = RedisLock(rclient, KEY, ttl_s=5), RedisLock(rclient, KEY, ttl_s=60)
    assert first.take()[0]
    value = rclient.get(KEY)
    ours, holder = second.take()
    assert not ours and holder is not None and holder.token == first.token
    assert rclient.get(KEY) == value and rclient.pttl(KEY) <= 5000


def test_the_holder_extends_its_lock_and_keeps_its_start_time(rclient: redis.Redis) -> None:
    lock = RedisLock(rclient, KEY, ttl_s=5)
    _, taken = lock.take()
    rclient.pexpire(KEY, 100)
    ours, extended = lock.take()
    assert ours and extended == taken
    assert rclient.pttl(KEY) > 4000


def test_an_expired_lock_goes_to_the_next_taker(rclient: redis.Redis) -> None:
    dead, standby = RedisLock(rclient, KEY, ttl_s=1), RedisLock(rclient, KEY, ttl_s=5)
    assert dead.take()[0]
    assert not standby.take()[0]
    wait_for(lambda: not rclient.exists(KEY), 5, what="the lock to expire")
    ours, holder = standby.take()
    assert ours and holder is not None and holder.token == standby.token
    # The old holder, back from a pause, can neither extend nor release its successor's lock.
    assert dead.take() == (False, holder)
    assert not dead.release()
    assert read_holder(rclient, KEY) == holder


def test_release_frees_the_lock_at_once_and_only_once(rclient: redis.Redis) -> None:
    lock, standby = RedisLock(rclient, KEY, ttl_s=5), RedisLock(rclient, KEY, ttl_s=5)
    lock.take()
    assert lock.release()
    assert not lock.release()
    assert read_holder(rclient, KEY) is None
    assert standby.take()[0]


def test_a_value_the_lock_did_not_write_is_held_by_someone_else(rclient: redis.Redis) -> None:
    rclient.set(KEY, "not json", px=5000)
    lock = RedisLock(rclient, KEY, ttl_s=5)
    assert lock.take() == (False, None)
    assert not lock.release()
    assert rclient.get(KEY) == "not json"
    assert read_holder(rclient, KEY) is None


def test_two_concurrent_runs_do_not_both_run(rclient: redis.Redis) -> None:
    started, finish = threading.Event(), threading.Event()
    ran: list[str] = []

    def slow() -> str:
        ran.append("first")
        started.set()
        finish.wait(10)
        return "done"

    results: list[str | None] = []
    first = threading.Thread(
        target=lambda: results.append(run_alone(RedisLock(rclient, KEY, ttl_s=30), "job", slow))
    )
    first.start()
    assert started.wait(10)
    second = run_alone(RedisLock(rclient, KEY, ttl_s=30), "job", lambda: ran.append("second"))
    finish.set()
    first.join(10)
    assert second is None and results == ["done"] and ran == ["first"]
    # Once the first run is over, the lock is free for the next one.
    assert read_holder(rclient, KEY) is None
    assert run_alone(RedisLock(rclient, KEY, ttl_s=30), "job", lambda: "next") == "next"
