"""The bench's own logic (it is not run by the suite, which must not time anything): every
module imports, worker configs parse, figures judge their targets, py-spy stacks are bucketed."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import bench
from bench.harness import WorkerConfig
from bench.measure import Figure, Target, percentile
from bench.pyspy import classify, summarize
from bench.report import _memory_section
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
        ("claim_many (core/ledger.py:150)", "deliver: claim (Lua round trip per wave)"),
        ("ack_many (core/ledger.py:170)", "deliver: ack (Lua round trip per group)"),
        ("post (worker/http_client.py:110)", "deliver: POST (urllib3)"),
        ("_deliver_wave (worker/delivery.py:90)", "deliver: other"),
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
