"""Baseline: the raw limit of `requests` here, a `requests.Session` POSTing in a tight loop.

`raw_post_rate()` runs `python -m bench.baseline_http` in several processes at once (they
start together at an agreed wall-clock time) and answers the combined posts per second.
Bodies are real wire bodies with unique ids, built before the clock starts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from bench.harness import API_KEY, PLATFORM, BenchError, base_env
from eventfwd.core.schema import validate_event
from eventfwd.devkit.samples import sample_events

START_DELAY_S = 1.5


def post_loop(url: str, bodies: list[bytes], *, trust_env: bool, start_at: float) -> dict[str, Any]:
    session = requests.Session()
    session.trust_env = trust_env
    headers = {"x-api-key": API_KEY, "Content-Type": "application/json"}
    endpoint = f"{url}/rmp/event/v1/platforms/{PLATFORM}/userevents"
    session.post(endpoint, data=b"{}", headers=headers)  # connect before the clock starts
    time.sleep(max(0.0, start_at - time.time()))
    errors = 0
    started = time.time()
    for body in bodies:
        if session.post(endpoint, data=body, headers=headers).status_code != 200:
            errors += 1
    return {"started": started, "ended": time.time(), "count": len(bodies), "errors": errors}


def raw_post_rate(
    work: Path, sink_url: str, *, total: int, processes: int = 2, trust_env: bool = False
) -> dict[str, Any]:
    """Combined POSTs/s of `processes` tight loops sharing `total` posts."""
    start_at = time.time() + START_DELAY_S + 0.3 * processes
    each = total // processes
    procs = []
    for i in range(processes):
        args = [sys.executable, "-m", "bench.baseline_http", "--url", sink_url]
        args += ["--count", str(each), "--start-at", repr(start_at), "--seed", f"raw{i}"]
        args += ["--trust-env", "1" if trust_env else "0"]
        procs.append(
            subprocess.Popen(args, cwd=work, env=base_env(), stdout=subprocess.PIPE, text=True)
        )
    results = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=max(60.0, total / 200))
            if proc.returncode != 0:
                raise BenchError(f"raw POST loop exited with {proc.returncode}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    started = min(r["started"] for r in results)
    ended = max(r["ended"] for r in results)
    count = sum(r["count"] for r in results)
    return {
        "posts_per_s": count / (ended - started),
        "count": count,
        "errors": sum(r["errors"] for r in results),
        "per_process": [r["count"] / (r["ended"] - r["started"]) for r in results],
    }


def _bodies(count: int, seed: str) -> list[bytes]:
    return [validate_event(e).body.encode() for e in sample_events(count, seed=seed)]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline_http")
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--start-at", type=float, required=True)
    parser.add_argument("--seed", default="raw")
    parser.add_argument("--trust-env", type=int, default=0)
    args = parser.parse_args()
    bodies = _bodies(args.count, args.seed)
    result = post_loop(args.url, bodies, trust_env=bool(args.trust_env), start_at=args.start_at)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
