"""What happens to one claimed event: refused before sending, POSTed, and its answer recorded.

The scheduler (`worker/engine.py`) decides which events a process sends and claims them; this
module holds the rules for one event once claimed (expired, unconfigured platform, each class
of Moloco's answer) and records them through the ledger: deliveries in one ack per group, any
other outcome one call per event (the rare path: an outage opens the circuit after a handful).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from eventfwd.core.ledger import Claim, Delivery, Ledger
from eventfwd.core.overrides import OverrideOwners, conflict_message
from eventfwd.core.settings import PlatformConfig, Settings
from eventfwd.core.vocabulary import Action, CircuitReason, DeadReason, RescheduleKind
from worker.backoff import retry_delay_s
from worker.classify import Outcome, circuit_reason, classify
from worker.http_client import HttpClient, Response
from worker.observability import report_circuit, report_dead_letter

log = logging.getLogger(__name__)

# Pause for a 429 that carries no Retry-After.
DEFAULT_THROTTLE_PAUSE_S = 1.0


@dataclass(frozen=True, slots=True)
class Send:
    """A claimed event on its way, and where it goes."""

    claim: Claim
    platform: PlatformConfig

    @property
    def event_id(self) -> str:
        return self.claim.event_id


class Deliverer:
    """The rules for one claimed event; one per worker process (its client keeps connections)."""

    def __init__(self, settings: Settings, ledger: Ledger, http: HttpClient) -> None:
        self.settings = settings
        self.ledger = ledger
        self.http = http
        self.owners = OverrideOwners(ledger.client, ledger.keys, settings)

    def prepare(self, claim: Claim) -> Send | str:
        """A `Send` for an event that may go now, else what became of it (settled here)."""
        owner = self.owners.conflict(claim.platform_id)
        if owner is not None:  # a look-alike id: never sent with another platform's key or URL
            return self._refuse_platform(claim, conflict_message(claim.platform_id, owner))
        platform = self.settings.platform(claim.platform_id)
        refused = self._refuse(claim, platform)
        return refused if refused else Send(claim, platform)

    def post(self, send: Send) -> Response:
        assert send.platform.api_key  # prepare() settled an event with none
        return self.http.post(send.platform.endpoint, send.platform.api_key, send.claim.body)

    def settle(self, answered: Sequence[tuple[Send, Response]]) -> dict[str, str]:
        """Record what Moloco answered: deliveries in one ack, anything else one by one."""
        outcomes: dict[str, str] = {}
        delivered: list[tuple[Send, Response]] = []
        for send, response in answered:
            if classify(response.status) is Outcome.DELIVERED:
                delivered.append((send, response))
            else:
                outcomes[send.event_id] = self._not_delivered(send, response)
        if delivered:
            deliveries = [
                Delivery(s.event_id, s.claim.token, r.duration_ms, r.status or 0)
                for s, r in delivered
            ]
            _held, closed = self.ledger.ack(deliveries)
            for platform_id in closed:
                log.warning("platform=%s circuit closed: probe delivered", platform_id)
                report_circuit(
                    platform_id=platform_id, opened=False, reason=CircuitReason.PROBE_DELIVERED
                )
            for send, _ in delivered:
                log.debug("event_id=%s delivered", send.event_id)
                outcomes[send.event_id] = "delivered"
        return outcomes

    def _refuse(self, claim: Claim, platform: PlatformConfig) -> str | None:
        """Settle a claimed event that must not be sent; None when it may be."""
        s = self.settings
        event_id, token = claim.event_id, claim.token
        if not s.allows_platform(claim.platform_id):
            return self._refuse_platform(claim)
        age_s = time.time() - claim.event_ms / 1000
        if age_s > s.max_event_age_s:
            message = f"event is {age_s / 86400:.1f} days old, over the maximum age"
            return self._dead_unsent(claim, DeadReason.EXPIRED, message)
        if not platform.base_url or not platform.api_key:
            missing = "base URL" if not platform.base_url else "API key"
            message = f"no Moloco {missing} configured for platform {claim.platform_id}"
            action, opened = self.ledger.reschedule(
                event_id,
                token,
                kind=RescheduleKind.BLOCKED,
                delay_s=0,
                status="",
                message=message,
                record={"at_ms": _now_ms(), "status": None, "outcome": "config"},
                reason=CircuitReason.CONFIG,
            )
            if opened:
                report_circuit(
                    platform_id=claim.platform_id,
                    opened=True,
                    reason=CircuitReason.CONFIG,
                    message=message,
                )
            return action

        return None

    def _refuse_platform(self, claim: Claim, message: str | None = None) -> str:
        """An event whose platform the allow-list does not name (or a look-alike of a platform
        that owns per-platform overrides) is never sent with our key: it waits as a dead letter
        (replayable once the platform is allowed)."""
        if message is None:
            message = f"platform {claim.platform_id} is not in EVENTFWD_ALLOWED_PLATFORMS"
        return self._dead_unsent(claim, DeadReason.NOT_ALLOWED, message)

    def _dead_unsent(self, claim: Claim, reason: DeadReason, message: str) -> str:
        """Make a claimed event that was never sent a dead letter (no attempt counted)."""
        moved = self.ledger.dead(
            claim.event_id,
            claim.token,
            reason=reason,
            status="",
            message=message,
            record=None,
            count_attempt=False,
            answered=False,
        )
        log.warning("event_id=%s dead: %s: %s", claim.event_id, reason, message)
        if moved:
            report_dead_letter(
                event_id=claim.event_id,
                platform_id=claim.platform_id,
                reason=reason,
                status="",
                message=message,
            )
        return reason

    def _not_delivered(self, send: Send, response: Response) -> str:
        """Record a POST that Moloco did not accept: dead, throttled, blocked or retried."""
        s = self.settings
        claim, platform = send.claim, send.platform
        event_id, token = claim.event_id, claim.token
        outcome = classify(response.status)
        record = {
            "at_ms": _now_ms(),
            "status": response.status,
            "outcome": outcome.value,
            "message": response.message,
            "duration_ms": response.duration_ms,
        }
        status = "" if response.status is None else str(response.status)
        if outcome is Outcome.PERMANENT:
            moved = self.ledger.dead(
                event_id,
                token,
                reason=DeadReason.REJECTED,
                status=status,
                message=response.message,
                record=record,
                rtt_ms=response.duration_ms,
                count_attempt=True,
                answered=True,
            )
            log.warning(
                "event_id=%s dead: rejected status=%s message=%s",
                event_id,
                status,
                response.message,
            )
            if moved:
                report_dead_letter(
                    event_id=event_id,
                    platform_id=claim.platform_id,
                    reason=DeadReason.REJECTED,
                    status=status,
                    message=response.message,
                )
            return "rejected"
        if outcome is Outcome.THROTTLED:
            pause_s = response.retry_after_s
            if pause_s is None:
                pause_s = DEFAULT_THROTTLE_PAUSE_S
            action, _ = self.ledger.reschedule(
                event_id,
                token,
                kind=RescheduleKind.THROTTLED,
                delay_s=0,
                status=status,
                message=response.message,
                record=record,
                rtt_ms=response.duration_ms,
                rate_per_s=platform.rate_limit_per_s,
                pause_s=pause_s,
            )
            log.info("event_id=%s throttled; platform paused %ss", event_id, pause_s)
            return "throttled"
        if outcome is Outcome.PLATFORM:
            assert response.status is not None
            reason = circuit_reason(response.status)
            action, opened = self.ledger.reschedule(
                event_id,
                token,
                kind=RescheduleKind.BLOCKED,
                delay_s=0,
                status=status,
                message=response.message,
                record=record,
                rtt_ms=response.duration_ms,
                reason=reason,
            )
            if opened:
                log.error(
                    "platform=%s circuit opened: %s (HTTP %s: %s)",
                    claim.platform_id,
                    reason,
                    status,
                    response.message,
                )
                report_circuit(
                    platform_id=claim.platform_id,
                    opened=True,
                    reason=reason,
                    status=status,
                    message=response.message,
                )
            return "blocked"
        delay_s = retry_delay_s(claim.attempts + 1, base_s=s.retry_base_s, max_s=s.retry_max_s)
        if response.retry_after_s is not None:
            delay_s = max(delay_s, response.retry_after_s)
        action, opened = self.ledger.reschedule(
            event_id,
            token,
            kind=RescheduleKind.TRANSIENT,
            delay_s=delay_s,
            status=status,
            message=response.message,
            record=record,
            rtt_ms=response.duration_ms,
        )
        if opened:
            log.error(
                "platform=%s circuit opened: outage (%s)", claim.platform_id, response.message
            )
            report_circuit(
                platform_id=claim.platform_id,
                opened=True,
                reason=CircuitReason.OUTAGE,
                status=status,
                message=response.message,
            )
        if action is Action.DEAD:
            report_dead_letter(
                event_id=event_id,
                platform_id=claim.platform_id,
                reason=DeadReason.RETRIES_EXHAUSTED,
                status=status,
                message=response.message,
            )
        log.info(
            "event_id=%s transient failure status=%s: %s (%s)",
            event_id,
            status or "none",
            response.message,
            action,
        )
        return DeadReason.RETRIES_EXHAUSTED if action is Action.DEAD else action


def _now_ms() -> int:
    return int(time.time() * 1000)
