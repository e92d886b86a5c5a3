"""The bench's own logic (it is not run by the suite, which must not time anything): every
module imports, worker configs parse, figures judge their targets, py-spy stacks are bucketed."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import bench
from bench import isolation, one_by_one, web_latency
from bench.__main__ import SCENARIOS, parse_args
from bench.harness import WorkerConfig
from bench.measure import Figure, Target, percentile
from bench.producer import produce
from bench.pyspy import classify, summarize
from bench.report import _memory_section, _scheduler_section
from eventfwd.core.settings import Settings


@pytest.mark.parametrize("name", [m.name for m in pkgutil.iter_modules(bench.__path__)])
def test_every_bench_module_imports(name: str) -> None:
    importlib.import_module(f"bench.{name}")


def test_the_default_worker_config_is_the_products() -> None:
    config = WorkerConfig()
    assert (config.pool, config.batch_size) == ("prefork", Settings().batch_size)


def test_a_worker_spec_sets_the_pool_batch_and_environment() -> None:
    config = WorkerConfig.parse("pool=threads,concurrency=8,batch=10,EVENTFWD_DELIVERY_THREADS=4")
    assert (config.pool, config.concurrency, config.batch_size) == ("threads", 8, 10)
    assert dict(config.env) == {"EVENTFWD_DELIVERY_THREADS": "4"}


def test_a_figure_is_the_median_of_its_runs_judged_against_its_target() -> None:
    figure = Figure(
        "delivery",
        "rate",
        "events/s",
        runs=[900.0, 1_300.0, 1_200.0],
        baseline_name="plain",
        baseline_runs=[300.0, 200.0, 400.0],
        target=Target(">=", 4, ratio=True),
    )
    assert (figure.value, figure.baseline, figure.ratio, figure.met) == (1_200, 300, 4.0, True)
    figure.runs = [1_000.0]
    assert figure.met is False
    assert Target("<=", 1).met(0.9, None) is True
    assert Target(">=", 2, ratio=True).met(5, None) is None  # no baseline, no verdict


def test_percentile_is_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile([], 99)) == (50, 99, 0)


@pytest.mark.parametrize(
    ("leaf", "bucket"),
    [
        ("claim (eventfwd/core/ledger.py:263)", "deliver: claim (Lua round trip per wave)"),
        ("ack (eventfwd/core/ledger.py:281)", "deliver: ack (Lua round trip per group)"),
        ("post (worker/http_client.py:110)", "deliver: POST (urllib3)"),
        ("settle (worker/delivery.py:62)", "deliver: other (engine, rules)"),
        ("_loop (worker/engine.py:150)", "deliver: other (engine, rules)"),
        (
            "_loop (worker/engine.py:150);wait (threading.py:320)",
            "idle: engine dispatcher waiting for a completion",
        ),
        (
            "_listen (worker/engine.py:200);blpop (redis/commands/core.py:1)",
            "idle: engine waiting for the doorbell",
        ),
        ("_worker (concurrent/futures/thread.py:81)", "idle: delivery threads waiting for work"),
        ("on_readable (kombu/transport/redis.py:1)", "Celery/kombu: fetch and dispatch messages"),
    ],
)
def test_py_spy_stacks_fall_in_the_innermost_step_of_the_delivery_path(
    leaf: str, bucket: str
) -> None:
    stack = f'process 1:"celery";process 2:"celery";main (celery/bin/worker.py:1);{leaf}'
    assert classify(stack) == bucket


def test_py_spy_samples_are_shared_by_bucket_and_process() -> None:
    raw = "\n".join(
        [
            'process 1:"celery";process 2:"celery";post (worker/http_client.py:110) 3',
            'process 1:"celery";on_readable (kombu/transport/redis.py:1) 1',
            "not a sample line",
        ]
    )
    summary = summarize(raw)
    assert summary["samples"] == 4
    assert summary["share_by_bucket"] == {
        "deliver: POST (urllib3)": 0.75,
        "Celery/kombu: fetch and dispatch messages": 0.25,
    }
    assert summary["share_by_process"] == {"pool child": 0.75, "main": 0.25}


def test_the_memory_section_splits_a_parked_events_bytes() -> None:
    run = {
        "redis_bytes_per_event": 800.0,
        "body_bytes_mean": 370.0,
        "memory_layout": {
            "envelope_hash_bytes_mean": 584.0,
            "schedule_zset_bytes_per_event": 136.0,
            "envelope_encoding": "listpack",
        },
    }
    text = "\n".join(_memory_section({"parked": [run, {**run, "redis_bytes_per_event": 820.0}]}))
    assert "| envelope hash (listpack: body and fields, key, keyspace entry) | 584 |" in text
    assert "| the rest (hash tables of the keyspace, allocator rounding) | 90.0 |" in text
    assert "| total (Redis used_memory growth per event) | 810 |" in text
    assert _memory_section({"parked": []}) == []


def test_the_scheduler_scenarios_are_wired_into_the_command() -> None:
    args = parse_args(["--quick", "--only", "one_by_one,isolation,web_latency"])
    assert args.scenarios == ["one_by_one", "isolation", "web_latency"]
    assert {"one_by_one", "isolation", "web_latency"} <= SCENARIOS.keys()
    with pytest.raises(SystemExit):
        parse_args(["--only", "redis_cpu"])  # measured by one_by_one, not a scenario


def test_the_scheduler_scenarios_judge_the_issues_targets() -> None:
    ratio = Target(">=", one_by_one.RATIO_TARGET, ratio=True)
    assert ratio.met(1_800, 2_000) is True and ratio.met(1_700, 2_000) is False
    assert Target(">=", one_by_one.RATE_TARGET_PER_S).met(1_499, None) is False
    redis_cpu = Target("<=", one_by_one.REDIS_CPU_RATIO_TARGET, ratio=True)
    assert redis_cpu.met(120, 80) is True and redis_cpu.met(121, 80) is False
    assert Target("<=", isolation.P99_TARGET_MS).met(2_001, 9.0) is False
    # the sink stamps arrival and answers 50 ms later: <= 150 ms answered is <= 100 ms arrived
    assert web_latency.P99_TARGET_MS + web_latency.SINK_LATENCY_MS == 150


class _CountingProducer:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def enqueue(self, platform_id: str, event: dict[str, object]) -> str:
        self.calls.append(1)
        return str(event["id"])

    def enqueue_many(self, platform_id: str, events: list[dict[str, object]]) -> list[str]:
        self.calls.append(len(events))
        return [str(e["id"]) for e in events]


def test_a_producer_process_enqueues_one_a_call_or_in_chunks() -> None:
    batch = [{"id": f"e{i}"} for i in range(7)]
    one, many = _CountingProducer(), _CountingProducer()
    result = produce(one, "p", batch, many=0, rate_per_s=0, phase_s=0, start_at=0)  # type: ignore[arg-type]
    produce(many, "p", batch, many=3, rate_per_s=0, phase_s=0, start_at=0)  # type: ignore[arg-type]
    assert (one.calls, many.calls, result["count"]) == ([1] * 7, [3, 3, 1], 7)
    assert result["sent_ms"] == {}  # call times are noted only when paced


def test_a_paced_producer_notes_each_calls_time() -> None:
    batch = [{"id": f"e{i}"} for i in range(3)]
    result = produce(
        _CountingProducer(), "p", batch, many=0, rate_per_s=1_000, phase_s=0, start_at=0
    )  # type: ignore[arg-type]
    assert list(result["sent_ms"]) == ["e0", "e1", "e2"]


def test_the_scheduler_section_shows_both_paths_isolation_and_the_plain_tasks_capacity() -> None:
    run = {"enqueued_per_s": 2_400.0, "per_s": 1_900.0, "redis_cpu_us_per_event": 90.0}
    details = {
        "one_by_one": {"producers": 4, "50ms": {"one_by_one": [run], "batched": [run]}},
        "isolation": {
            "slow_backlog": 2_000,
            "rate_per_s": 20.0,
            "while_hanging": [{"slow_platform_requests": 10}],
        },
        "web_latency": {
            "rate_per_s": 500.0,
            "producers": 4,
            "sink_latency_ms": 50,
            "plain_celery_capacity_per_s": 37.0,
            "ours": [{"offered_per_s": 499.0}],
        },
    }
    text = "\n".join(_scheduler_section(details))
    assert "| one by one, 50 ms sink | 2,400 | 1,900 | 90.0 |" in text
    assert "held 10.0 requests open" in text
    assert "so it cannot hold the pace and has no latency figure" in text
    assert _scheduler_section({}) == []
