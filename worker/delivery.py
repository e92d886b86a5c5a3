"""Deliver one event: claim it, POST it to Moloco, and record what happened (claim → act → ack)."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter

from core.ledger import Claim, Ledger
from core.settings import Settings
from worker.backoff import parse_retry_after, retry_delay_s
from worker.classify import Outcome, circuit_reason, classify
from worker.observability import report_circuit, report_dead_letter

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.05
MESSAGE_MAX_CHARS = 500
# Pause for a 429 that carries no Retry-After.
DEFAULT_THROTTLE_PAUSE_S = 1.0
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy")
_CA_VARS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def make_session(pool_size: int = 10) -> requests.Session:
    """A keep-alive session that reads the environment once, not on every request.

    requests' `trust_env` re-reads proxies and CA bundles from the environment on each call
    (a third of a POST's CPU here); the CA bundle is read once instead, and the per-request
    look-up stays on only where a proxy is configured (it also honours `no_proxy`).
    """
    session = requests.Session()
    session.trust_env = any(os.environ.get(v) or os.environ.get(v.upper()) for v in _PROXY_VARS)
    ca_bundle = next((os.environ[v] for v in _CA_VARS if os.environ.get(v)), None)
    if ca_bundle:
        session.verify = ca_bundle
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@dataclass(frozen=True, slots=True)
class Response:
    """What came back from one POST: a status (None when nothing did) and Moloco's message."""

    status: int | None
    message: str
    retry_after_s: float | None
    duration_ms: int


def moloco_message(text: str) -> str:
    """Moloco's `message` from a gRPC-status JSON body, else the start of the body."""
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:MESSAGE_MAX_CHARS]
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"][:MESSAGE_MAX_CHARS]
    return text.strip()[:MESSAGE_MAX_CHARS]


class Deliverer:
    """Sends claimed events; one per worker process (its session keeps connections alive)."""

    def __init__(self, settings: Settings, ledger: Ledger, session: requests.Session) -> None:
        self.settings = settings
        self.ledger = ledger
        self.session = session

    def deliver(self, event_id: str) -> str:
        """Try to deliver one event; return what happened (for logs and tests)."""
        token = uuid.uuid4().hex
        claim = self.ledger.claim(event_id, token)
        if claim.status != "ok":
            log.debug("event_id=%s not claimed: %s", event_id, claim.status)
            return claim.status
        return self._act(event_id, token, claim)

    def _act(self, event_id: str, token: str, claim: Claim) -> str:
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
        platform = s.platform(claim.platform_id)
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

        response = self._post(platform.endpoint, platform.api_key, claim.body)
        outcome = classify(response.status)
        record = {
            "at_ms": _now_ms(),
            "status": response.status,
            "outcome": outcome.value,
            "message": response.message,
            "duration_ms": response.duration_ms,
        }
        status = "" if response.status is None else str(response.status)
        if outcome is Outcome.DELIVERED:
            _held, closed = self.ledger.ack(event_id, token)
            if closed:
                log.warning("platform=%s circuit closed: probe delivered", claim.platform_id)
                report_circuit(
                    platform_id=claim.platform_id, opened=False, reason="probe_delivered"
                )
            log.debug("event_id=%s delivered status=%s", event_id, status)
            return "delivered"
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

    def _post(self, url: str, api_key: str, body: str) -> Response:
        started = time.monotonic()
        try:
            r = self.session.post(
                url,
                data=body.encode(),
                headers={"x-api-key": api_key, "Content-Type": "application/json"},
                timeout=(
                    min(CONNECT_TIMEOUT_S, self.settings.http_timeout_s),
                    self.settings.http_timeout_s,
                ),
                allow_redirects=False,
                stream=True,
            )
        except requests.Timeout:
            return Response(None, "timeout", None, _ms_since(started))
        except requests.RequestException as exc:
            return Response(
                None, f"connection error ({type(exc).__name__})", None, _ms_since(started)
            )
        # The status line is the answer: a 200 whose body then breaks off was still accepted,
        # and resending it would only make a duplicate.
        try:
            text = r.text
        except requests.RequestException as exc:
            text = f"unreadable response body ({type(exc).__name__})"
        finally:
            r.close()
        return Response(
            r.status_code,
            moloco_message(text) if r.status_code >= 300 else "",
            parse_retry_after(r.headers.get("Retry-After")),
            _ms_since(started),
        )


def _now_ms() -> int:
    return int(time.time() * 1000)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
