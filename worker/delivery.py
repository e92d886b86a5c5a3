"""Deliver events: claim them, POST each to Moloco, and record what happened (claim → act → ack).

A message's ids go in waves of at most `delivery_threads`: one ledger call claims the wave,
its POSTs run side by side on the process's threads (the waits on Moloco overlap), and the
deliveries are acked together as they complete, one ledger call per group. Claim and ack were
two round trips per event before; now they are two per wave, whatever its size.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from eventfwd.core.ledger import Claim, Ledger
from eventfwd.core.settings import PlatformConfig, Settings
from worker.backoff import retry_delay_s
from worker.classify import Outcome, circuit_reason, classify
from worker.http_client import HttpClient, Response
from worker.observability import report_circuit, report_dead_letter

log = logging.getLogger(__name__)

# Pause for a 429 that carries no Retry-After.
DEFAULT_THROTTLE_PAUSE_S = 1.0


@dataclass(frozen=True, slots=True)
class _Send:
    """A claimed event on its way: where it sits in the message, and where it goes."""

    index: int
    event_id: str
    claim: Claim
    platform: PlatformConfig
    api_key: str


class Deliverer:
    """Sends claimed events; one per worker process (its client keeps connections alive)."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        http: HttpClient,
        *,
        threads: int = 1,
        wave_size: int | None = None,
    ) -> None:
        """`wave_size`: ids per claim (default `threads`, so that no claimed event waits for a
        thread while its lease runs; the bench sets it to profile a wave in one thread)."""
        self.settings = settings
        self.ledger = ledger
        self.http = http
        self._wave = max(1, wave_size or threads)
        self._threads = (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="eventfwd-deliver")
            if threads > 1
            else None
        )

    def deliver(self, event_id: str) -> str:
        """Try to deliver one event; return what happened (for logs and tests)."""
        return self.deliver_many([event_id])[0]

    def deliver_many(self, event_ids: Sequence[str]) -> list[str]:
        """Try to deliver each event; return what happened to each, in order."""
        outcomes: list[str] = []
        for start in range(0, len(event_ids), self._wave):
            outcomes += self._deliver_wave(event_ids[start : start + self._wave])
        return outcomes

    def _deliver_wave(self, event_ids: Sequence[str]) -> list[str]:
        token = uuid.uuid4().hex
        claims = self.ledger.claim_many(event_ids, token)
        outcomes: dict[int, str] = {}
        sends: list[_Send] = []
        for index, (event_id, claim) in enumerate(zip(event_ids, claims, strict=True)):
            if claim.status != "ok":
                log.debug("event_id=%s not claimed: %s", event_id, claim.status)
                outcomes[index] = claim.status
                continue
            platform = self.settings.platform(claim.platform_id)
            refused = self._refuse(event_id, token, claim, platform)
            if refused:
                outcomes[index] = refused
            else:
                assert platform.api_key  # _refuse settled an event with none
                sends.append(_Send(index, event_id, claim, platform, platform.api_key))
        for answered in self._post_all(sends):
            outcomes.update(self._settle(token, answered))
        return [outcomes[index] for index in range(len(event_ids))]

    def _post(self, send: _Send) -> Response:
        return self.http.post(send.platform.endpoint, send.api_key, send.claim.body)

    def _post_all(self, sends: list[_Send]) -> Iterator[list[tuple[_Send, Response]]]:
        """POST every send; yield the answers in groups, as they arrive."""
        if self._threads is None or len(sends) < 2:
            yield [(send, self._post(send)) for send in sends]
            return
        pending: dict[Future[Response], _Send] = {
            self._threads.submit(self._post, send): send for send in sends
        }
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            yield [(pending.pop(future), future.result()) for future in done]

    def _settle(self, token: str, answered: list[tuple[_Send, Response]]) -> dict[int, str]:
        """Record what Moloco answered: deliveries in one ack, anything else one by one."""
        outcomes: dict[int, str] = {}
        delivered: list[_Send] = []
        for send, response in answered:
            if classify(response.status) is Outcome.DELIVERED:
                delivered.append(send)
            else:
                outcomes[send.index] = self._not_delivered(send, token, response)
        if delivered:
            _held, closed = self.ledger.ack_many([send.event_id for send in delivered], token)
            for platform_id in closed:
                log.warning("platform=%s circuit closed: probe delivered", platform_id)
                report_circuit(platform_id=platform_id, opened=False, reason="probe_delivered")
            for send in delivered:
                log.debug("event_id=%s delivered", send.event_id)
                outcomes[send.index] = "delivered"
        return outcomes

    def _refuse(
        self, event_id: str, token: str, claim: Claim, platform: PlatformConfig
    ) -> str | None:
        """Settle a claimed event that must not be sent; None when it may be."""
        s = self.settings
        age_s = time.time() - claim.event_ms / 1000
        if age_s > s.max_event_age_s:
            message = f"event is {age_s / 86400:.1f} days old, over the maximum age"
            moved = self.ledger.dead(
                event_id,
                token,
                reason="expired",
                status="",
                message=message,
                record=None,
                count_attempt=False,
                answered=False,
            )
            log.warning("event_id=%s dead: expired", event_id)
            if moved:
                report_dead_letter(
                    event_id=event_id,
                    platform_id=claim.platform_id,
                    reason="expired",
                    status="",
                    message=message,
                )
            return "expired"
        if not platform.base_url or not platform.api_key:
            missing = "base URL" if not platform.base_url else "API key"
            message = f"no Moloco {missing} configured for platform {claim.platform_id}"
            action, opened = self.ledger.reschedule(
                event_id,
                token,
                kind="blocked",
                delay_s=0,
                status="",
                message=message,
                record={"at_ms": _now_ms(), "status": None, "outcome": "config"},
                reason="config",
            )
            if opened:
                report_circuit(
                    platform_id=claim.platform_id, opened=True, reason="config", message=message
                )
            return action

        return None

    def _not_delivered(self, send: _Send, token: str, response: Response) -> str:
        """Record a POST that Moloco did not accept: dead, throttled, blocked or retried."""
        s = self.settings
        event_id, claim, platform = send.event_id, send.claim, send.platform
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
                reason="rejected",
                status=status,
                message=response.message,
                record=record,
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
                    reason="rejected",
                    status=status,
                    message=response.message,
                )
            return "rejected"
        if outcome is Outcome.THROTTLED:
            pause_s = response.retry_after_s
            action, _ = self.ledger.reschedule(
                event_id,
                token,
                kind="throttled",
                delay_s=0,
                status=status,
                message=response.message,
                record=record,
                rate_per_s=platform.rate_limit_per_s,
                pause_s=DEFAULT_THROTTLE_PAUSE_S if pause_s is None else pause_s,
            )
            log.info("event_id=%s throttled; platform paused %ss", event_id, pause_s)
            return "throttled"
        if outcome is Outcome.PLATFORM:
            assert response.status is not None
            reason = circuit_reason(response.status)
            action, opened = self.ledger.reschedule(
                event_id,
                token,
                kind="blocked",
                delay_s=0,
                status=status,
                message=response.message,
                record=record,
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
            kind="transient",
            delay_s=delay_s,
            status=status,
            message=response.message,
            record=record,
        )
        if opened:
            log.error(
                "platform=%s circuit opened: outage (%s)", claim.platform_id, response.message
            )
            report_circuit(
                platform_id=claim.platform_id,
                opened=True,
                reason="outage",
                status=status,
                message=response.message,
            )
        if action == "dead":
            report_dead_letter(
                event_id=event_id,
                platform_id=claim.platform_id,
                reason="retries_exhausted",
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
        return "retries_exhausted" if action == "dead" else action


def _now_ms() -> int:
    return int(time.time() * 1000)
