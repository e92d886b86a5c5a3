"""Sample a live Celery worker draining a backlog with py-spy: where its CPU goes, Celery included.

py-spy is optional (`pip install py-spy`; `BENCH_PY_SPY` may name the binary). It samples the
worker's main process and its pool children while they deliver a backlog against the 0 ms sink
(non-blocking, so the worker is not paused), and each sampled stack is put in one bucket by the
innermost step of the delivery path it is in.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.context import RunContext
from bench.events import events
from bench.harness import Sink, flush, wait_for
from bench.stack import OurStack
from eventfwd.devkit.localredis import LocalRedis

SAMPLE_RATE_HZ = 100
# (bucket, substrings of a frame); checked from the leaf up, so the innermost match wins.
FRAME_BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("deliver: claim (Lua round trip per wave)", ("claim (eventfwd/core/ledger.py",)),
    ("deliver: ack (Lua round trip per group)", ("ack (eventfwd/core/ledger.py",)),
    ("deliver: POST (urllib3)", ("post (worker/http_client.py",)),
    ("idle: engine waiting for the doorbell", ("_listen (worker/engine.py",)),
    ("deliver: other (engine, rules)", ("(worker/engine.py", "(worker/delivery.py",
                                        "deliver (worker/tasks.py")),
]  # fmt: skip
SECTION_BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("Celery/kombu: fetch and dispatch messages", ("kombu/", "celery/worker/consumer")),
    ("Celery/billiard: pool plumbing", ("billiard/", "celery/concurrency")),
    ("Celery: task tracing, acks, signals", ("celery/",)),
]


def py_spy_binary() -> str | None:
    """`BENCH_PY_SPY`, else py-spy next to this Python (a venv's bin), else on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    if os.environ.get("BENCH_PY_SPY"):
        return os.environ["BENCH_PY_SPY"]
    return str(beside) if beside.exists() else shutil.which("py-spy")


IDLE_LEAVES = ("_worker (concurrent/futures/thread.py",)
# The engine's dispatcher blocked on its condition (waiting for a completion or a wake-up).
WAIT_LEAF = "wait (threading.py"
ENGINE_LOOP = "_loop (worker/engine.py"


def classify(stack: str) -> str:
    frames = stack.split(";")
    if any(frames[-1].startswith(leaf) for leaf in IDLE_LEAVES):
        # py-spy counts a pool thread blocked on its work queue as active
        return "idle: delivery threads waiting for work"
    if frames[-1].startswith(WAIT_LEAF) and any(f.startswith(ENGINE_LOOP) for f in frames[-3:]):
        return "idle: engine dispatcher waiting for a completion"
    for frame in reversed(frames):
        for name, needles in FRAME_BUCKETS:
            if any(n in frame for n in needles):
                return name
    for frame in reversed(frames):
        for name, needles in SECTION_BUCKETS:
            if any(n in frame for n in needles):
                return name
    return "other"


def summarize(raw: str) -> dict[str, Any]:
    """Share of samples per bucket, split by process (main vs pool child) when py-spy says."""
    by_bucket: Counter[str] = Counter()
    by_process: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        # With --subprocesses each stack starts with one "process PID:..." frame per ancestor.
        depth = sum(1 for frame in stack.split(";", 3)[:3] if frame.startswith("process "))
        by_process["pool child" if depth >= 2 else "main"] += count
        by_bucket[classify(stack)] += count
    return {
        "samples": total,
        "share_by_bucket": {
            k: round(v / total, 3) for k, v in by_bucket.most_common()
        } if total else {},
        "share_by_process": {
            k: round(v / total, 3) for k, v in by_process.most_common()
        } if total else {},
    }  # fmt: skip


def sample_worker(ctx: RunContext, server: LocalRedis, sink: Sink) -> dict[str, Any]:
    binary = py_spy_binary()
    if binary is None:
        return {"skipped": "py-spy not found (pip install py-spy, or set BENCH_PY_SPY)"}
    flush(server)
    sink.reset()
    duration_s = ctx.scale(8, 3)
    stack = OurStack(ctx.work, server, sink, ctx.default_config)
    out_path = ctx.work / "py-spy.txt"
    try:
        stack.enqueue(events(ctx.scale(30_000, 10_000), "spy"))
        stack.start()
        assert stack.worker is not None
        wait_for(lambda: sink.stats()["accepted"] > 500, 60, "the worker to start delivering")
        args = [binary, "record", "--pid", str(stack.worker.pid), "--subprocesses"]
        args += ["--nonblocking", "--rate", str(SAMPLE_RATE_HZ), "--duration", str(duration_s)]
        args += ["--format", "raw", "--output", str(out_path)]
        before = sink.stats()["accepted"]
        done = subprocess.run(args, capture_output=True, text=True, timeout=duration_s + 60)
        delivered = sink.stats()["accepted"] - before
    finally:
        stack.close()
    if done.returncode != 0 or not out_path.exists():
        return {"skipped": f"py-spy failed: {(done.stderr or done.stdout)[-300:]}"}
    summary = summarize(out_path.read_text())
    summary["seconds"] = duration_s
    summary["delivered_while_sampling"] = delivered
    summary["config"] = ctx.default_config.as_dict()
    return summary
