"""Producer processes, as web handlers would be: `EventProducer.enqueue()` in a loop, one event a
call (or `enqueue_many()` in chunks, for the batched comparison).

`run_producers()` starts `python -m bench.producer` in several processes that begin together at
an agreed wall-clock time (after importing and building their events) and answers what each did.
A process reads its settings from the `EVENTFWD_` environment it is given, as a web app would.
With `rate_per_s` the calls are paced on a fixed schedule (the processes' schedules interleave)
and each call's wall-clock time is recorded, for enqueue → receipt latencies.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.events import events
from bench.harness import BenchError
from producers import EventProducer

START_DELAY_S = 2.0


@dataclass(frozen=True)
class Produced:
    """What the producer processes of one run did, together."""

    count: int
    started: float
    ended: float
    sent_ms: dict[str, float]

    @property
    def per_s(self) -> float:
        return self.count / max(self.ended - self.started, 1e-3)


def produce(
    producer: EventProducer,
    platform_id: str,
    batch: list[dict[str, Any]],
    *,
    many: int,
    rate_per_s: float,
    phase_s: float,
    start_at: float,
) -> dict[str, Any]:
    """Enqueue `batch` (one a call unless `many` > 0); paced when `rate_per_s` > 0."""
    sent: dict[str, float] = {}
    time.sleep(max(0.0, start_at - time.time()))
    started = time.time()
    clock = time.perf_counter() + phase_s
    if many:
        for i in range(0, len(batch), many):
            producer.enqueue_many(platform_id, batch[i : i + many])
    else:
        for i, event in enumerate(batch):
            if rate_per_s:
                delay = clock + i / rate_per_s - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                sent[event["id"]] = time.time() * 1000
            producer.enqueue(platform_id, event)
    return {"started": started, "ended": time.time(), "count": len(batch), "sent_ms": sent}


class Producers:
    """`processes` producer processes sharing `count` events; `rate_per_s` is their combined
    pace (0: flat out). `start()` returns at once; `collect()` waits for them."""

    def __init__(
        self,
        work: Path,
        env: dict[str, str],
        platform_id: str,
        *,
        processes: int,
        count: int,
        seed: str,
        many: int = 0,
        rate_per_s: float = 0.0,
    ) -> None:
        self.work = work
        self.env = env
        self.platform_id = platform_id
        self.processes = processes
        self.count = count
        self.seed = seed
        self.many = many
        self.rate_per_s = rate_per_s
        self._procs: list[subprocess.Popen[str]] = []

    def start(self) -> Producers:
        start_at = time.time() + START_DELAY_S + 0.3 * self.processes
        each = self.count // self.processes
        for i in range(self.processes):
            phase_s = i / self.rate_per_s if self.rate_per_s else 0.0
            args = [sys.executable, "-m", "bench.producer", "--platform", self.platform_id]
            args += ["--count", str(each), "--seed", f"{self.seed}-{i}"]
            args += ["--start-at", repr(start_at), "--many", str(self.many)]
            args += ["--rate", repr(self.rate_per_s / self.processes), "--phase", repr(phase_s)]
            self._procs.append(
                subprocess.Popen(
                    args, cwd=self.work, env=self.env, stdout=subprocess.PIPE, text=True
                )
            )
        return self

    def collect(self, timeout_s: float = 300.0) -> Produced:
        results = []
        try:
            for proc in self._procs:
                out, _ = proc.communicate(timeout=timeout_s)
                if proc.returncode != 0:
                    raise BenchError(f"a producer process exited with {proc.returncode}")
                results.append(json.loads(out.strip().splitlines()[-1]))
        finally:
            self.kill()
        sent: dict[str, float] = {}
        for r in results:
            sent.update(r["sent_ms"])
        return Produced(
            count=sum(r["count"] for r in results),
            started=min(r["started"] for r in results),
            ended=max(r["ended"] for r in results),
            sent_ms=sent,
        )

    @property
    def alive(self) -> bool:
        return any(proc.poll() is None for proc in self._procs)

    def failed(self) -> bool:
        """A producer exited with an error (the run can stop waiting for its events)."""
        return any(proc.poll() not in (None, 0) for proc in self._procs)

    def kill(self) -> None:
        """Stop the producers this run started (by their PIDs), if any are still running."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.producer")
    parser.add_argument("--platform", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seed", required=True)
    parser.add_argument("--start-at", type=float, required=True)
    parser.add_argument("--many", type=int, default=0, help="events per enqueue_many() call")
    parser.add_argument("--rate", type=float, default=0.0, help="calls per second (0: flat out)")
    parser.add_argument("--phase", type=float, default=0.0, help="offset of the schedule (s)")
    args = parser.parse_args()
    batch = events(args.count, args.seed)
    producer = EventProducer()
    try:
        result = produce(
            producer,
            args.platform,
            batch,
            many=args.many,
            rate_per_s=args.rate,
            phase_s=args.phase,
            start_at=args.start_at,
        )
    finally:
        producer.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
