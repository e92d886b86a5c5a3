"""Request handling: Moloco's user-event path, the /_sink/ control API, and what to answer.

`SinkApp.handle` turns a parsed request into an outcome for the connection: a `Reply` (bytes,
maybe after a delay, maybe closing), a `Hang` or a `Reset`. An API request goes through:
path (404) -> method (405) -> fault plan -> body size (413) -> x-api-key (401, 403) ->
platform (404) -> body (400) -> accepted (200 `{}`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from hmac import compare_digest
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote

from eventfwd.devkit.sink.faults import (
    Fault,
    FaultPlan,
    FaultSpecError,
    parse_fault_spec,
    rule_from_dict,
)
from eventfwd.devkit.sink.rules import EventRejected, read_event
from eventfwd.devkit.sink.tally import Tally
from eventfwd.devkit.sink.wire import MAX_BODY_BYTES, BadRequest, Request, response_bytes

log = logging.getLogger(__name__)

API_PREFIX = "/rmp/event/v1/platforms/"
API_SUFFIX = "/userevents"
CONTROL_PREFIX = "/_sink/"
EVENTS_LIMIT_DEFAULT = 100

# google.rpc.Code for each HTTP status, as grpc-gateway maps them.
GRPC_CODES = {
    400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 409: 10, 412: 9, 413: 3,
    429: 8, 499: 1, 500: 13, 501: 12, 502: 14, 503: 14, 504: 4,
}  # fmt: skip
MESSAGES = {
    401: "missing api key",
    403: "invalid api key",
    404: "Not Found",
    405: "Method Not Allowed",
    413: f"request body larger than {MAX_BODY_BYTES} bytes",
    429: "request denied by throttler, try again later",
    500: "internal error",
    502: "bad gateway",
    503: "service unavailable",
    504: "deadline exceeded",
}
MALFORMED_BODY = b"<html><body>eventfwd sink: malformed response</body></html>"
_OK_KEEP_ALIVE = response_bytes(200, b"{}")


@dataclass(frozen=True, slots=True)
class Reply:
    """Write `data` after `delay_s`, then close the connection if `close`."""

    data: bytes
    close: bool = False
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Hang:
    """Never answer; with `hang_s`, close the connection silently after that long."""

    hang_s: float | None = None


@dataclass(frozen=True, slots=True)
class Reset:
    """Close the socket abruptly (RST), answering nothing."""


Outcome = Reply | Hang | Reset


def grpc_code(status: int) -> int:
    """The google.rpc.Code that goes with an HTTP status."""
    return GRPC_CODES.get(status, 13 if status >= 500 else 2)


def error_body(status: int, message: str | None = None) -> bytes:
    """A JSON gRPC status, the shape of every Moloco error."""
    if message is None:
        message = MESSAGES.get(status) or HTTPStatus(status).phrase.lower()
    return json.dumps({"code": grpc_code(status), "message": message, "details": []}).encode()


def platform_of(path: str) -> str | None:
    """The platform id in a user-event path, or None for any other path."""
    if path.startswith(API_PREFIX) and path.endswith(API_SUFFIX):
        platform = path[len(API_PREFIX) : -len(API_SUFFIX)]
        if platform and "/" not in platform:
            return unquote(platform)
    return None


class SinkApp:
    """The sink's behaviour, independent of sockets; runs on one event loop thread."""

    def __init__(
        self,
        *,
        api_key: str,
        platforms: Iterable[str] | None = None,
        tally: Tally | None = None,
        plan: FaultPlan | None = None,
        latency_ms: int = 0,
        log_answers: bool = False,
    ) -> None:
        if not api_key:
            raise ValueError("the sink needs a non-empty api key")
        self._api_key = api_key.encode()
        self.platforms = frozenset(platforms) if platforms else None
        self.tally = tally if tally is not None else Tally()
        self.plan = plan if plan is not None else FaultPlan()
        self.latency_ms = latency_ms
        self._log_answers = log_answers

    def handle(self, request: Request) -> Outcome:
        """Decide what the connection does with one request."""
        if request.path.startswith(CONTROL_PREFIX):
            return self._control(request)
        platform = platform_of(request.path)
        self.tally.count_request(platform)
        if platform is None:
            return self._reply(request, 404)
        if request.method != "POST":
            return self._reply(request, 405, headers=(("Allow", "POST"),))

        delay_s = self.latency_ms / 1000
        fault = self.plan.decide(platform)
        if fault is not None:
            self.tally.count_fault(fault.label)
            if self._log_answers and fault.kind != "status":  # a status is logged as answered
                log.info(
                    "fault %s platform=%s event_id=%s", fault.label, platform, _event_id(request)
                )
            if fault.kind == "status":
                return self._status_fault(request, fault, delay_s)
            if fault.kind == "hang":
                return Hang(fault.hang_s)
            if fault.kind == "reset":
                return Reset()
            if fault.kind == "latency":
                delay_s += fault.latency_ms / 1000

        status, message = self._process(request, platform)
        if fault is None or fault.kind == "latency":
            return self._reply(request, status, message, delay_s=delay_s)
        # malformed / truncated: the request was handled, only the answer is garbled.
        self.tally.count_status(200)
        if fault.kind == "malformed":
            data = response_bytes(
                200, MALFORMED_BODY, keep_alive=request.keep_alive, http10=request.http10
            )
            return Reply(data, close=not request.keep_alive, delay_s=delay_s)
        return Reply(response_bytes(200, b"{", keep_alive=False, content_length=2), True, delay_s)

    def refuse(self, error: BadRequest) -> Reply:
        """Answer bytes that are not a readable request, and close."""
        self.tally.count_request(None)
        self.tally.count_status(error.status)
        body = error_body(error.status, error.message)
        return Reply(response_bytes(error.status, body, keep_alive=False), close=True)

    def stats(self) -> dict[str, Any]:
        """Counters as served by GET /_sink/stats."""
        return {**self.tally.snapshot(), "faults_active": len(self.plan)}

    def add_fault(self, spec: Any) -> dict[str, Any]:
        """Add one rule (JSON form, or the command-line grammar as a string)."""
        return self.plan.add(rule_from_dict(_rule_spec(spec)))

    def reset(self) -> None:
        """Zero the counters, forget recent events, clear the fault plan."""
        self.tally.reset()
        self.plan.clear()

    def _process(self, request: Request, platform: str) -> tuple[int, str | None]:
        """Run the normal checks; accept the event on success. Return (status, message)."""
        if request.too_large:
            return 413, None
        key = request.headers.get("x-api-key")
        if not key:
            return 401, None
        if not compare_digest(key.encode(), self._api_key):
            return 403, None
        if self.platforms is not None and platform not in self.platforms:
            return 404, f"platform {platform} not found"
        now_ms = int(time.time() * 1000)
        try:
            event = read_event(request.body, now_ms)
        except EventRejected as exc:
            return 400, exc.message
        self.tally.accept(platform, event, now_ms)
        return 200, None

    def _status_fault(self, request: Request, fault: Fault, delay_s: float) -> Reply:
        headers: tuple[tuple[str, str], ...] = ()
        if fault.retry_after_s is not None:
            headers = (("Retry-After", str(fault.retry_after_s)),)
        return self._reply(request, fault.status, fault.message, headers=headers, delay_s=delay_s)

    def _reply(
        self,
        request: Request,
        status: int,
        message: str | None = None,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        delay_s: float = 0.0,
    ) -> Reply:
        self.tally.count_status(status)
        keep_alive = request.keep_alive
        if status == 200 and keep_alive and not request.http10:
            return Reply(_OK_KEEP_ALIVE, delay_s=delay_s)
        body = b"{}" if status == 200 else error_body(status, message)
        if self._log_answers and status != 200:
            log.info(
                "answered %d %s %s event_id=%s: %s",
                status, request.method, request.path, _event_id(request), message or "",
            )  # fmt: skip
        data = response_bytes(
            status, body, keep_alive=keep_alive, http10=request.http10, headers=headers
        )
        return Reply(data, close=not keep_alive, delay_s=delay_s)

    # -- control API, not counted as API requests --------------------------------------------

    def _control(self, request: Request) -> Reply:
        route = request.path[len(CONTROL_PREFIX) :].rstrip("/")
        method = request.method
        allowed = _CONTROL_ROUTES.get(route)
        if allowed is None:
            return _json(request, 404, {"code": 5, "message": "Not Found", "details": []})
        if method not in allowed:
            return _json(request, 405, {"code": 12, "message": "Method Not Allowed", "details": []})
        if route == "health":
            return _json(request, 200, {"status": "ok"})
        if route == "stats":
            return _json(request, 200, self.stats())
        if route == "events":
            query = parse_qs(request.query)
            try:
                limit = int(query.get("limit", [EVENTS_LIMIT_DEFAULT])[0])
            except ValueError:
                return _json(request, 400, _control_error("limit must be an integer"))
            return _json(request, 200, {"events": self.tally.recent(max(limit, 0))})
        if route == "reset":
            self.reset()
            return _json(request, 200, {})
        # faults
        if method == "GET":
            return _json(request, 200, {"faults": self.plan.describe()})
        if method == "DELETE":
            return _json(request, 200, {"cleared": self.plan.clear()})
        try:
            spec = json.loads(request.body)
            specs = spec if isinstance(spec, list) else [spec]
            rules = [rule_from_dict(_rule_spec(one)) for one in specs]  # all or none
            added = [self.plan.add(rule) for rule in rules]
            return _json(request, 200, {"added": added} if isinstance(spec, list) else added[0])
        except (ValueError, FaultSpecError) as exc:
            return _json(request, 400, _control_error(str(exc)))


_CONTROL_ROUTES = {
    "health": ("GET",),
    "stats": ("GET",),
    "events": ("GET",),
    "faults": ("GET", "POST", "DELETE"),
    "reset": ("POST",),
}


def _event_id(request: Request) -> str:
    """The event id of a request body, for logs only (parses the body again)."""
    try:
        event_id = json.loads(request.body).get("id")
    except (ValueError, AttributeError):
        return "-"
    return event_id if isinstance(event_id, str) and event_id else "-"


def _rule_spec(spec: Any) -> Any:
    """A rule's JSON form; a string is read as the command-line grammar."""
    return parse_fault_spec(spec) if isinstance(spec, str) else spec


def _control_error(message: str) -> dict[str, Any]:
    return {"code": 3, "message": message, "details": []}


def _json(request: Request, status: int, payload: Any) -> Reply:
    data = response_bytes(
        status,
        json.dumps(payload).encode(),
        keep_alive=request.keep_alive,
        http10=request.http10,
    )
    return Reply(data, close=not request.keep_alive)
