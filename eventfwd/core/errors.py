"""The one exception tree of eventfwd.

EventForwarderError
 ├── ConfigError           a setting is missing, malformed or unknown (names the variable)
 ├── InvalidEvent          an event broke Moloco's schema or rules (carries every FieldError)
 ├── EnqueueError          the ledger could not accept an event (Redis unreachable, spool full)
 └── LedgerError           a ledger script answered something it must never answer
"""

from __future__ import annotations

from dataclasses import dataclass

# An InvalidEvent lists at most this many errors, then one `more_errors` marker: the answer to
# a hostile event stays small whatever the event holds.
MAX_REPORTED_ERRORS = 50
# the rule of the last FieldError of a list cut at MAX_REPORTED_ERRORS
MORE_ERRORS = "more_errors"


class EventForwarderError(Exception):
    """Root of every error eventfwd raises on purpose."""


class ConfigError(EventForwarderError):
    """A setting is missing, malformed or unknown."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One broken rule: where (dotted path), which rule (a stable code) and a sentence."""

    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<event>'}: {self.message} [{self.rule}]"

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "rule": self.rule, "message": self.message}


class InvalidEvent(EventForwarderError, ValueError):
    """An event was refused; `errors` lists every broken rule, `str()` shows them all."""

    def __init__(self, errors: list[FieldError], *, index: int | None = None) -> None:
        self.errors = list(errors[:MAX_REPORTED_ERRORS])
        if errors and errors[-1].rule == MORE_ERRORS:
            # already cut (re-raised with an index): keep it, marker and count as they are
            self.errors = list(errors)
        elif len(errors) > MAX_REPORTED_ERRORS:
            more = len(errors) - MAX_REPORTED_ERRORS
            self.errors.append(FieldError("", MORE_ERRORS, f"and {more} more error(s), not listed"))
        self.index = index
        where = f"event #{index}" if index is not None else "event"
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"invalid {where} ({len(self.errors)} error(s)):\n{lines}")

    def as_dicts(self) -> list[dict[str, str]]:
        return [e.as_dict() for e in self.errors]


class EnqueueError(EventForwarderError):
    """Events could not be stored durably; `stored_ids` lists those of the batch that were."""

    def __init__(self, message: str, *, stored_ids: list[str] | None = None) -> None:
        super().__init__(message)
        self.stored_ids = list(stored_ids or [])


class LedgerError(EventForwarderError):
    """A ledger script returned an answer outside its contract."""
