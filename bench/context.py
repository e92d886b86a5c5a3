"""What every scenario is handed: where to work, how long to run, what to measure, and a log."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import WorkerConfig
from bench.measure import Figure


@dataclass
class RunContext:
    work: Path
    runs: int
    quick: bool
    configs: list[WorkerConfig]
    drain_rate_per_s: float = 150.0
    outage_events: int = 100_000
    many_batch: int = 500
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def default_config(self) -> WorkerConfig:
        return self.configs[0]

    def say(self, message: str) -> None:
        """A progress line on stderr, with the time since the bench started."""
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)

    def check(self, scenario: str, what: str, expected: int, got: int) -> None:
        """Record a count that must match (lost = 0 and friends); a mismatch is reported."""
        ok = expected == got
        self.checks.append(
            {"scenario": scenario, "what": what, "expected": expected, "got": got, "ok": ok}
        )
        if not ok:
            self.say(f"CHECK FAILED {scenario}: {what}: expected {expected}, got {got}")

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full
