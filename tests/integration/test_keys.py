"""Every key the ledger's scripts write is one that `eventfwd.core.keys.Keys` names, and every
word they write into a state, a reason or a counter is one of `eventfwd.core.vocabulary`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import redis

from eventfwd.core.keys import Keys
from eventfwd.core.latency import E2E_BOUNDS_MS, RTT_BOUNDS_MS
from eventfwd.core.ledger import SPECS, ArgSpec, Delivery, Ledger
from eventfwd.core.lock import RedisLock
from eventfwd.core.settings import Settings
from eventfwd.core.vocabulary import (
    CircuitReason,
    Counter,
    DeadReason,
    Lane,
    RescheduleKind,
    State,
)
from producers import EventProducer
from tests.conftest import example_events
from tests.support.ledger import claim_ready

pytestmark = pytest.mark.integration

LUA = Path(__file__).resolve().parents[2] / "eventfwd" / "core" / "lua"
P, PLATFORM, ID = "eventfwd", "acme", "some-id"


def named_patterns(keys: Keys) -> list[re.Pattern[str]]:
    """A pattern per key Keys can name (platform, id, minute and lock name as wildcards)."""
    names = [
        keys.event(ID), keys.sched(PLATFORM), keys.ready(PLATFORM), keys.inflight(PLATFORM),
        keys.platforms, keys.active, keys.rr, keys.bell, keys.engines, keys.wake, keys.dead,
        keys.done(ID), keys.stats, keys.minute(1), keys.seq, keys.platform_stats(PLATFORM),
        keys.platform_minute(PLATFORM, 1), keys.beat, keys.retention, keys.circuit(PLATFORM),
        keys.rate(PLATFORM), keys.conc(PLATFORM), keys.pause(PLATFORM), keys.lock("beat"),
        keys.seen, keys.hist(PLATFORM),
    ]  # fmt: skip
    patterns = []
    for name in names:
        escaped = re.escape(name)
        for part, wildcard in ((ID, "[^:]+"), (PLATFORM, "[^:]+"), ("1", r"\d+"), ("beat", r"\w+")):
            escaped = escaped.replace(re.escape(part), wildcard)
        patterns.append(re.compile(f"^{escaped}$"))
    return patterns


def test_every_key_a_whole_life_writes_is_named_by_keys(
    redis_url: str, rclient: redis.Redis
) -> None:
    settings = Settings(redis_url=redis_url, rate_limit_per_s=1000)
    ledger = Ledger(redis.Redis.from_url(redis_url), settings)
    producer = EventProducer(settings=settings)
    ids = producer.enqueue_many(PLATFORM, example_events()[:6])
    claims = claim_ready(ledger, "t")
    assert set(claims) == set(ids)
    ledger.ack([Delivery(ids[0], "t", 30, 200)])
    ledger.reschedule(
        ids[1], "t", kind=RescheduleKind.TRANSIENT, delay_s=0, status="503", message="x",
        record={},
    )  # fmt: skip
    ledger.reschedule(
        ids[2], "t", kind=RescheduleKind.THROTTLED, delay_s=0, status="429", message="x",
        record={}, rate_per_s=30, pause_s=1,
    )  # fmt: skip
    ledger.dead(
        ids[3], "t", reason=DeadReason.REJECTED, status="400", message="x", record={},
        count_attempt=True, answered=True,
    )  # fmt: skip
    ledger.reschedule(
        ids[4], "t", kind=RescheduleKind.BLOCKED, delay_s=0, status="403", message="x",
        record={}, reason=CircuitReason.AUTH,
    )  # fmt: skip
    ledger.pump()
    ledger.replay([ids[3]], max_replays=0)
    ledger.pause_platform(PLATFORM, by="test")
    ledger.resume_platform(PLATFORM, by="test")
    ledger.reset_circuit(PLATFORM)
    ledger.pump()
    ledger.purge([ids[3]])
    assert RedisLock(rclient, ledger.keys.lock("beat"), ttl_s=5).take()[0]
    queues = {settings.queue, f"{settings.queue}.control"}
    patterns = named_patterns(ledger.keys)
    unnamed = [
        k
        for k in rclient.scan_iter(match="*")
        if k not in queues and not k.startswith("_kombu") and not any(p.match(k) for p in patterns)
    ]
    assert unnamed == []


def lua_words(pattern: str) -> set[str]:
    words: set[str] = set()
    for path in LUA.glob("*.lua"):
        words |= set(re.findall(pattern, path.read_text()))
    return words


def test_every_state_the_scripts_write_is_a_state() -> None:
    written = lua_words(r"HSET', ev, 'state', '([a-z]+)'") | lua_words(
        r"redis\.call\('HSET', ev, 'state', '([a-z]+)'"
    )
    assert written and written <= {s.value for s in State}


def test_every_lane_reason_and_counter_the_scripts_write_is_in_the_vocabulary() -> None:
    lanes = lua_words(r"'lane', '([a-z]+)'")
    assert lanes and lanes <= {lane.value for lane in Lane}
    reasons = lua_words(r"to_dead\([^)]*?'([a-z_]+)', ")
    assert reasons and reasons <= {r.value for r in DeadReason}
    counters = lua_words(r"count(?:_both|_platform)?\(p, [^,]+, '([a-z_]+)'")
    counters |= lua_words(r"HINCRBY', key\(p, 'stats'\), '([a-z_]+)'")
    assert counters and counters <= {c.value for c in Counter} | {"dead:", "failed:"}
    opened = lua_words(r"circuit_open\(p, platform, '([a-z_]+)'")
    assert opened <= {r.value for r in CircuitReason}


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.script)
def test_each_scripts_named_argv_matches_its_header(spec: ArgSpec) -> None:
    text = (LUA / f"{spec.script}.lua").read_text()
    header = text[text.index("-- ARGV") : text.index("-- Returns")]
    assert "eventfwd/core/ledger.py" in header  # it points at the Python spec
    numbers = [int(n) for n in re.findall(r"(?:[:,]|--)\s+(\d+) [A-Za-z']", header)]
    assert numbers and max(numbers) == len(spec.names), (spec.script, numbers, spec.names)


def test_the_lua_histogram_bounds_are_the_python_ones() -> None:
    text = (LUA / "latency.lua").read_text()

    def bounds(name: str) -> tuple[int, ...]:
        body = text[text.index(f"local {name} = {{") :].split("}", 1)[0].split("{", 1)[1]
        return tuple(int(v) for v in re.findall(r"\d+", body))

    assert bounds("RTT_BOUNDS") == RTT_BOUNDS_MS
    assert bounds("E2E_BOUNDS") == E2E_BOUNDS_MS
