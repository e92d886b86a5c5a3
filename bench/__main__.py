"""`python -m bench`: run the benchmark scenarios, print the figures, write JSON and the docs.

    python -m bench                                   # everything, 3 runs each (~25 min)
    python -m bench --quick                           # fewer events, 1 run (~5 min)
    python -m bench --only enqueue,delivery --runs 5
    python -m bench --only delivery --worker pool=threads,concurrency=32,batch=10

`docs/performance.md` is rewritten by a full run of every scenario (or with --docs).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    delivery,
    enqueue,
    isolation,
    latency,
    one_by_one,
    outage,
    profile,
    validation,
    web_latency,
)
from bench.context import RunContext
from bench.harness import ROOT, STARTED, BenchError, WorkerConfig, install_signal_handlers
from bench.machine import load_average, machine_info
from bench.report import console, markdown, write_json

SCENARIOS = {
    "enqueue": enqueue.run,
    "delivery": delivery.run,
    "outage": outage.run,
    "latency": latency.run,
    "one_by_one": one_by_one.run,
    "isolation": isolation.run,
    "web_latency": web_latency.run,
    "profile": profile.run,
    "validation": validation.run,
}
DOCS = ROOT / "docs" / "performance.md"
# Below what the default worker delivers on a busy 2-core box, so the drain tests the limiter.
DEFAULT_DRAIN_RATE_PER_S = 150.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"comma-separated: {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--runs", type=int, help="runs per figure (default 3, --quick 1)")
    parser.add_argument("--quick", action="store_true", help="fewer events and 1 run")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "latest.json", help="JSON results"
    )
    parser.add_argument(
        "--worker",
        action="append",
        type=WorkerConfig.parse,
        metavar="SPEC",
        help="worker config, repeatable: pool=prefork,concurrency=2,batch=1[,EVENTFWD_X=v]\n"
        "(default: the project's defaults; the first one also serves outage and latency)",
    )
    parser.add_argument(
        "--drain-rate",
        type=float,
        default=DEFAULT_DRAIN_RATE_PER_S,
        help="outage: the platform rate limit for the drain (/s); keep it below what the\n"
        "worker delivers here, or the drain measures capacity instead of the limit",
    )
    parser.add_argument("--outage-events", type=int, help="outage: events parked (100,000)")
    parser.add_argument(
        "--many-batch", type=int, default=500, help="enqueue_many(): events per call"
    )
    parser.add_argument("--docs", action="store_true", help="rewrite docs/performance.md")
    parser.add_argument("--no-docs", action="store_true", help="never rewrite the docs")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    args.scenarios = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    work = Path(tempfile.mkdtemp(prefix="eventfwd-bench-"))
    ctx = RunContext(
        work=work,
        runs=args.runs or (1 if args.quick else 3),
        quick=args.quick,
        configs=args.worker or [WorkerConfig()],
        drain_rate_per_s=args.drain_rate,
        outage_events=args.outage_events or (20_000 if args.quick else 100_000),
        many_batch=args.many_batch,
    )
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    machine = machine_info()
    ctx.say(f"load average {machine['load_average_start']}; work directory {work}")
    errors: list[str] = []
    loads: dict[str, dict[str, list[float]]] = {}
    try:
        for name in args.scenarios:
            loads[name] = {"start": load_average()}
            try:
                SCENARIOS[name](ctx)
            except BenchError as exc:
                errors.append(f"{name}: {exc}")
                ctx.say(f"{name}: FAILED: {exc}")
            finally:
                STARTED.stop_all()
                loads[name]["end"] = load_average()
    except KeyboardInterrupt:
        ctx.say("interrupted; stopping everything the bench started")
        STARTED.stop_all()
        return 130
    finally:
        STARTED.stop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    meta = {
        "started_at": started_at,
        "duration_s": round(time.monotonic() - ctx.started, 1),
        "mode": "quick" if args.quick else "full",
        "runs": ctx.runs,
        "scenarios": args.scenarios,
        "worker_configs": [c.label for c in ctx.configs],
        "drain_rate_per_s": ctx.drain_rate_per_s,
        "machine": machine,
        "load_average_end": load_average(),
        "load_average_by_scenario": loads,
        "errors": errors,
    }
    payload = {
        "meta": meta,
        "figures": [f.as_dict() for f in ctx.figures],
        "checks": ctx.checks,
        "details": ctx.details,
    }
    print(console(ctx.figures, ctx.checks, meta))
    write_json(args.out, payload)
    print(f"results: {args.out}")
    full = not args.quick and set(args.scenarios) == set(SCENARIOS) and not errors
    if (args.docs or full) and not args.no_docs:
        DOCS.write_text(markdown(payload, ctx.figures))
        print(f"docs: {DOCS}")
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    failed = errors or any(not c["ok"] for c in ctx.checks)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
