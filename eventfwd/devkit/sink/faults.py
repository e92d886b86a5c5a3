"""Fault plan: rules that make the sink misbehave on purpose, and their two spellings.

A rule as JSON (`POST /_sink/faults`, `SinkServer.add_fault`):

    {"fault": 503, "retry_after_s": 2, "message": "down", "count": 10, "platform": "acme"}
    {"fault": "latency", "latency_ms": 250, "seconds": 30}
    {"fault": "hang", "hang_s": 5, "count": 1}
    {"fault": "reset", "count": 5}
    {"fault": "malformed", "count": 1}
    {"fault": "mix", "seed": 7, "seconds": 60, "mix": [
        {"fault": 500, "weight": 0.1},
        {"fault": 429, "retry_after_s": 2, "weight": 0.05},
        {"fault": "reset", "weight": 0.02}]}

fault          what the sink does with a matching API request
  400..599     answers that status with a gRPC status body (`retry_after_s` adds an integer
               `Retry-After` header, `message` replaces the usual message); the event is not
               accepted.
  "latency"    waits `latency_ms`, then answers normally (the event is accepted on arrival, so a
               client that gives up meanwhile makes a real duplicate when it retries).
  "hang"       reads the request and never answers ("timeout" is an alias); with `hang_s`, closes
               the connection without an answer after that many seconds. Not accepted.
  "reset"      closes the socket with SO_LINGER 0: the client gets ECONNRESET, no response.
  "malformed"  handles the request as usual (a valid event is accepted), answers 200 with a body
               that is not JSON.
  "truncated"  handles the request as usual, answers 200 whose Content-Length promises more bytes
               than are sent, then closes the connection.
  "mix"        draws one entry of `mix` per request: a list of faults (as above, without
               count/seconds/platform) each with a `weight`. Weights are probabilities and the
               remainder (1 - sum) is answered normally; weights summing over 1 are scaled to 1.
               `seed` (int) makes the draws reproducible; without it a random seed is chosen and
               shown by `GET /_sink/faults`.

count     the rule decides this many matching requests, then drops.
seconds   the rule lives this many seconds from when it was added, then drops.
          Neither: until cleared. Both: whichever runs out first.
platform  only requests for this platform id match; others pass the rule by.

The plan is FIFO: for each API request (after routing, before authentication) the first live
rule whose platform matches decides, and uses up one of its count; a mix that draws "no fault"
still decides, and the request is answered normally.

On the command line (`--fault`, repeatable) a rule is `HEAD[:OPTION]...`:

    HEAD    STATUS | latency | hang | timeout | reset | malformed | truncated
            | mix:ENTRY[,ENTRY]...      with ENTRY = HEAD=WEIGHT (no nested mix)
    OPTION  count=N | seconds=S | platform=ID | retry_after=S | message=TEXT (no ':')
            | ms=N (latency) | hang_s=S | seed=N

Options of a mix apply to every entry that takes them (retry_after to statuses, ms to latency,
hang_s to hangs). Examples: `500:count=10`, `429:retry_after=2:seconds=30`, `reset:count=5`,
`hang:count=1`, `latency:ms=300:seconds=10`, `503:platform=acme:count=3`,
`mix:500=0.1,503=0.05,429=0.05,reset=0.02,timeout=0.01:seed=7`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("latency", "hang", "reset", "malformed", "truncated")
_ALIASES = {"timeout": "hang"}
_FAULT_KEYS = {"fault", "retry_after_s", "message", "latency_ms", "hang_s"}
_RULE_KEYS = _FAULT_KEYS | {"count", "seconds", "platform", "mix", "seed"}
_CLI_KEYS = {"retry_after": "retry_after_s", "ms": "latency_ms"}


class FaultSpecError(ValueError):
    """A fault rule could not be read; the message says which part and why."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One way to misbehave: `kind` is "status" or one of KINDS."""

    kind: str
    status: int = 0
    retry_after_s: int | None = None
    message: str | None = None
    latency_ms: int = 0
    hang_s: float | None = None

    @property
    def label(self) -> str:
        """Short name for counters: the status code or the kind."""
        return str(self.status) if self.kind == "status" else self.kind

    def as_dict(self) -> dict[str, Any]:
        """The JSON form, without unset options."""
        shown: dict[str, Any] = {"fault": self.status if self.kind == "status" else self.kind}
        if self.retry_after_s is not None:
            shown["retry_after_s"] = self.retry_after_s
        if self.message is not None:
            shown["message"] = self.message
        if self.kind == "latency":
            shown["latency_ms"] = self.latency_ms
        if self.hang_s is not None:
            shown["hang_s"] = self.hang_s
        return shown


class FaultRule:
    """A fault (or a weighted mix) with its limits; `decide` uses it up."""

    def __init__(
        self,
        fault: Fault | None,
        mix: tuple[tuple[Fault, float], ...] = (),
        *,
        count: int | None = None,
        seconds: float | None = None,
        platform: str | None = None,
        seed: int | None = None,
    ) -> None:
        self.rule_id = 0
        self.fault = fault
        self.mix = mix
        self.count_left = count
        self.seconds = seconds
        self.platform = platform
        self.seed = seed
        self.expires_at: float | None = None
        self._rng = random.Random(seed)
        total = sum(weight for _, weight in mix)
        self._scale = max(total, 1.0)
        cumulative = 0.0
        self._thresholds: list[tuple[float, Fault]] = []
        for entry, weight in mix:
            cumulative += weight
            self._thresholds.append((cumulative, entry))

    def draw(self) -> Fault | None:
        """Pick this request's fault; None means answer normally."""
        if self.fault is not None:
            return self.fault
        point = self._rng.random() * self._scale
        for threshold, fault in self._thresholds:
            if point < threshold:
                return fault
        return None

    def describe(self, now: float) -> dict[str, Any]:
        """The rule as JSON, with what is left of it."""
        shown: dict[str, Any] = {"id": self.rule_id}
        if self.fault is not None:
            shown.update(self.fault.as_dict())
        else:
            shown["fault"] = "mix"
            shown["mix"] = [{**fault.as_dict(), "weight": weight} for fault, weight in self.mix]
            shown["seed"] = self.seed
        if self.count_left is not None:
            shown["count_left"] = self.count_left
        if self.expires_at is not None:
            shown["seconds_left"] = round(max(self.expires_at - now, 0.0), 3)
        if self.platform is not None:
            shown["platform"] = self.platform
        return shown


class FaultPlan:
    """FIFO list of rules; the first live rule that matches a request decides."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._rules: list[FaultRule] = []
        self._next_id = 1

    def add(self, rule: FaultRule) -> dict[str, Any]:
        """Append a rule, start its time window; return its description."""
        now = self._clock()
        rule.rule_id = self._next_id
        self._next_id += 1
        if rule.seconds is not None:
            rule.expires_at = now + rule.seconds
        self._rules.append(rule)
        return rule.describe(now)

    def clear(self) -> int:
        """Drop every rule; return how many there were."""
        dropped = len(self._rules)
        self._rules.clear()
        return dropped

    def decide(self, platform: str | None) -> Fault | None:
        """Return the fault for one API request to `platform`, or None to answer normally."""
        rules = self._rules
        if not rules:
            return None
        now = self._clock()
        index = 0
        while index < len(rules):
            rule = rules[index]
            if rule.expires_at is not None and now >= rule.expires_at:
                del rules[index]
                continue
            if rule.platform is not None and rule.platform != platform:
                index += 1
                continue
            fault = rule.draw()
            if rule.count_left is not None:
                rule.count_left -= 1
                if rule.count_left <= 0:
                    del rules[index]
            return fault
        return None

    def describe(self) -> list[dict[str, Any]]:
        """Every live rule as JSON, in decision order."""
        now = self._clock()
        self._rules = [r for r in self._rules if r.expires_at is None or now < r.expires_at]
        return [rule.describe(now) for rule in self._rules]

    def __len__(self) -> int:
        return len(self._rules)


def rule_from_dict(spec: Mapping[str, Any]) -> FaultRule:
    """Build a rule from its JSON form; raise `FaultSpecError`."""
    if not isinstance(spec, Mapping):
        raise FaultSpecError("a fault rule must be a JSON object")
    unknown = set(spec) - _RULE_KEYS
    if unknown:
        raise FaultSpecError(f"unknown fault rule keys: {', '.join(sorted(unknown))}")
    count = _optional_number(spec, "count", int, minimum=1)
    seconds = _optional_number(spec, "seconds", float, minimum=0.0)
    platform = spec.get("platform")
    if platform is not None and (not isinstance(platform, str) or not platform):
        raise FaultSpecError("platform must be a non-empty string")
    limits: dict[str, Any] = {"count": count, "seconds": seconds, "platform": platform}

    if _kind_of(spec.get("fault")) != "mix":
        for key in ("mix", "seed"):
            if key in spec:
                raise FaultSpecError(f'{key} only goes with fault "mix"')
        fault = fault_from_dict({k: v for k, v in spec.items() if k not in limits})
        return FaultRule(fault, **limits)

    entries = spec.get("mix")
    if not isinstance(entries, list) or not entries:
        raise FaultSpecError("mix must be a non-empty list of {fault, weight}")
    mix: list[tuple[Fault, float]] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise FaultSpecError("each mix entry must be an object {fault, weight, ...}")
        weight = _optional_number(entry, "weight", float, minimum=0.0)
        if weight is None:
            raise FaultSpecError("each mix entry needs a weight")
        mix.append((fault_from_dict({k: v for k, v in entry.items() if k != "weight"}), weight))
    seed = _optional_number(spec, "seed", int, minimum=None)
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    return FaultRule(None, tuple(mix), seed=seed, **limits)


def fault_from_dict(spec: Mapping[str, Any]) -> Fault:
    """Build one fault (no limits, no mix) from its JSON form; raise `FaultSpecError`."""
    unknown = set(spec) - _FAULT_KEYS
    if unknown:
        raise FaultSpecError(f"unknown fault keys: {', '.join(sorted(unknown))}")
    kind = _kind_of(spec.get("fault"))
    if kind == "mix":
        raise FaultSpecError("a mix cannot contain a mix")
    retry_after_s = _optional_number(spec, "retry_after_s", int, minimum=0)
    message = spec.get("message")
    if message is not None and not isinstance(message, str):
        raise FaultSpecError("message must be a string")
    latency_ms = _optional_number(spec, "latency_ms", int, minimum=0)
    hang_s = _optional_number(spec, "hang_s", float, minimum=0.0)
    if isinstance(kind, int):
        if latency_ms is not None or hang_s is not None:
            raise FaultSpecError("latency_ms and hang_s do not go with a status fault")
        return Fault("status", kind, retry_after_s, message)
    if retry_after_s is not None or message is not None:
        raise FaultSpecError(f"retry_after_s and message only go with a status, not {kind}")
    if kind == "latency":
        if not latency_ms:
            raise FaultSpecError("a latency fault needs latency_ms > 0")
        return Fault("latency", latency_ms=latency_ms)
    if latency_ms is not None:
        raise FaultSpecError(f"latency_ms does not go with {kind}")
    if kind == "hang":
        return Fault("hang", hang_s=hang_s)
    if hang_s is not None:
        raise FaultSpecError(f"hang_s does not go with {kind}")
    return Fault(kind)


def parse_fault_spec(text: str) -> dict[str, Any]:
    """Read the command-line grammar (`503:retry_after=2:count=10`) into the JSON form."""
    parts = text.strip().split(":")
    head = parts[0].strip().lower()
    options = parts[1:]
    spec: dict[str, Any] = {}
    if head == "mix":
        if not options or "=" not in options[0]:
            raise FaultSpecError(f"{text!r}: mix needs entries, e.g. mix:500=0.1,reset=0.02")
        spec["fault"] = "mix"
        spec["mix"] = [_mix_entry(entry, text) for entry in options[0].split(",")]
        options = options[1:]
    else:
        spec["fault"] = _head_value(head, text)
    shared: dict[str, Any] = {}
    for option in options:
        key, sep, value = option.partition("=")
        key = _CLI_KEYS.get(key.strip(), key.strip())
        if not sep or not key:
            raise FaultSpecError(f"{text!r}: option {option!r} is not key=value")
        if key in ("count", "seed", "retry_after_s", "latency_ms"):
            parsed: Any = _cli_number(value, int, key, text)
        elif key in ("seconds", "hang_s"):
            parsed = _cli_number(value, float, key, text)
        elif key in ("platform", "message"):
            parsed = value
        else:
            raise FaultSpecError(f"{text!r}: unknown option {key!r}")
        if head == "mix" and key in ("retry_after_s", "message", "latency_ms", "hang_s"):
            shared[key] = parsed
        else:
            spec[key] = parsed
    if head == "mix":
        for entry in spec["mix"]:
            _share_options(entry, shared)
    rule_from_dict(spec)  # fail here, naming the text, rather than later
    return spec


def _share_options(entry: dict[str, Any], shared: Mapping[str, Any]) -> None:
    kind = entry["fault"]
    takes = {
        "latency": ("latency_ms",),
        "hang": ("hang_s",),
    }.get(kind, ("retry_after_s", "message") if isinstance(kind, int) else ())
    entry.update({key: shared[key] for key in takes if key in shared})


def _mix_entry(entry: str, text: str) -> dict[str, Any]:
    head, sep, weight = entry.partition("=")
    if not sep:
        raise FaultSpecError(f"{text!r}: mix entry {entry!r} is not KIND=WEIGHT")
    return {
        "fault": _head_value(head.strip().lower(), text),
        "weight": _cli_number(weight, float, f"weight of {head}", text),
    }


def _head_value(head: str, text: str) -> int | str:
    kind = _ALIASES.get(head, head)
    if kind.isdigit():
        return int(kind)
    if kind in KINDS or kind == "mix":
        return kind
    raise FaultSpecError(f"{text!r}: unknown fault {head!r}")


def _kind_of(value: Any) -> int | str:
    """Normalise the `fault` field: a status code (int) or a kind name."""
    if isinstance(value, str):
        value = _ALIASES.get(value.lower(), value.lower())
        if value.isdigit():
            value = int(value)
    if type(value) is int:
        if not 400 <= value <= 599:
            raise FaultSpecError(f"a status fault must be 400..599, got {value}")
        return value
    if value in KINDS or value == "mix":
        return str(value)
    raise FaultSpecError(
        f"fault must be a status 400..599 or one of {', '.join((*KINDS, 'mix'))}, got {value!r}"
    )


def _optional_number(
    spec: Mapping[str, Any], key: str, kind: type, *, minimum: float | None
) -> Any:
    value = spec.get(key)
    if value is None:
        return None
    allowed = (int,) if kind is int else (int, float)
    if type(value) not in allowed or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise FaultSpecError(f"{key} must be {'an integer' if kind is int else 'a number'}{bound}")
    return kind(value)


def _cli_number(value: str, kind: type, key: str, text: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise FaultSpecError(f"{text!r}: {key} must be a number, got {value!r}") from None
