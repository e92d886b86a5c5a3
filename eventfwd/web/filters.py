"""The dead-letter filter of the console's forms and links (the CLI's options, one of each)."""

from __future__ import annotations

from dataclasses import dataclass

from eventfwd.core.records import DEAD_REASONS, STATUS_PATTERN, DeadFilter, window_problem
from eventfwd.ops.timefmt import parse_when

FIELDS = ("platform", "reason", "status", "since", "until", "message", "grep")


@dataclass(frozen=True, slots=True)
class FormFilter:
    params: dict[str, str]  # the non-empty fields as typed, for links and hidden inputs
    flt: DeadFilter
    error: str | None = None

    def describe(self) -> str:
        if not self.params:
            return "every dead letter"
        words = {"message": "message contains", "grep": "body contains"}
        return ", ".join(f"{words.get(k, k)} {v!r}" for k, v in self.params.items())


def read_filter(source: dict[str, str]) -> FormFilter:
    """Build the filter from query or form fields; `error` says what was not understood."""
    params = {k: source[k].strip() for k in FIELDS if source.get(k, "").strip()}
    problems = []
    reason = params.get("reason")
    if reason and reason not in DEAD_REASONS:
        problems.append(f"reason must be one of {', '.join(DEAD_REASONS)}")
    status = params.get("status", "").lower()
    if status and not STATUS_PATTERN.fullmatch(status):
        problems.append("status: use 400, 4xx, 5xx or none")
    when: dict[str, int | None] = {"since": None, "until": None}
    for name in when:
        if name in params:
            try:
                when[name] = parse_when(params[name])
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
    window = window_problem(when["since"], when["until"])
    if window:
        problems.append(window)
    if problems:
        return FormFilter(params, DeadFilter(), "; ".join(problems))
    flt = DeadFilter(
        platforms=frozenset([params["platform"]]) if "platform" in params else frozenset(),
        reasons=frozenset([reason]) if reason else frozenset(),
        statuses=frozenset([status]) if status else frozenset(),
        since_ms=when["since"],
        until_ms=when["until"],
        message=params.get("message"),
        grep=params.get("grep"),
    )
    return FormFilter(params, flt)
