"""Figures: the median of several runs, its same-run baseline, the ratio and the target."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


@dataclass(frozen=True)
class Target:
    """What a figure must reach: `op` is '>=' or '<='; `ratio` compares to the baseline."""

    op: str
    value: float
    ratio: bool = False

    def met(self, value: float, baseline: float | None) -> bool | None:
        if self.ratio:
            if not baseline:
                return None
            value = value / baseline
        return value >= self.value if self.op == ">=" else value <= self.value

    def describe(self, unit: str) -> str:
        if self.ratio:
            return f"{self.op} {self.value:g}x baseline"
        return f"{self.op} {self.value:,g} {unit}"


@dataclass
class Figure:
    """One reported number: the median of `runs`, next to a baseline from the same run."""

    scenario: str
    name: str
    unit: str
    runs: list[float]
    baseline_name: str = ""
    baseline_runs: list[float] = field(default_factory=list)
    target: Target | None = None
    config: str = ""
    note: str = ""
    higher_is_better: bool = True

    @property
    def value(self) -> float:
        return median(self.runs)

    @property
    def baseline(self) -> float | None:
        return median(self.baseline_runs) if self.baseline_runs else None

    @property
    def ratio(self) -> float | None:
        baseline = self.baseline
        return self.value / baseline if baseline else None

    @property
    def met(self) -> bool | None:
        return self.target.met(self.value, self.baseline) if self.target else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "name": self.name,
            "config": self.config,
            "unit": self.unit,
            "value": round(self.value, 3),
            "runs": [round(v, 3) for v in self.runs],
            "baseline": None
            if self.baseline is None
            else {
                "name": self.baseline_name,
                "value": round(self.baseline, 3),
                "runs": [round(v, 3) for v in self.baseline_runs],
            },
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "target": None
            if self.target is None
            else {
                "op": self.target.op,
                "value": self.target.value,
                "of_baseline": self.target.ratio,
                "text": self.target.describe(self.unit),
            },
            "met": self.met,
            "note": self.note,
        }


def fmt(value: float | None, unit: str = "") -> str:
    """A number for a table: thousands separators, few decimals, the unit after."""
    if value is None:
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:,.1f}"
    else:
        text = f"{value:,.2f}"
    return f"{text} {unit}".strip()
