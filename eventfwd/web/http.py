"""Just enough HTTP over WSGI for the console: a request, a response, and a router."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlencode

MAX_FORM_BYTES = 1_000_000


class Request:
    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.method: str = environ.get("REQUEST_METHOD", "GET").upper()
        self.path: str = environ.get("PATH_INFO", "") or "/"
        self.root: str = environ.get("SCRIPT_NAME", "").rstrip("/")  # where we are mounted
        self.query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        cookie = SimpleCookie()
        try:
            cookie.load(environ.get("HTTP_COOKIE", ""))
        except Exception:  # a malformed cookie header: as if there were none
            cookie = SimpleCookie()
        self.cookies = {k: m.value for k, m in cookie.items()}
        self._form: dict[str, list[str]] | None = None

    def header(self, name: str) -> str | None:
        return self.environ.get("HTTP_" + name.upper().replace("-", "_"))

    @property
    def form_all(self) -> dict[str, list[str]]:
        if self._form is None:
            try:
                length = min(int(self.environ.get("CONTENT_LENGTH") or 0), MAX_FORM_BYTES)
            except ValueError:
                length = 0
            body = self.environ["wsgi.input"].read(length) if length else b""
            self._form = parse_qs(body.decode("utf-8", "replace"))
        return self._form

    @property
    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in self.form_all.items()}

    def url(self, path: str, **params: Any) -> str:
        """A URL of this app (mount prefix included), with the non-empty `params`."""
        query = urlencode([(k, v) for k, v in params.items() if v not in (None, "")])
        return self.root + path + (f"?{query}" if query else "")


@dataclass
class Response:
    body: bytes | str = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def set_cookie(
        self, name: str, value: str, *, path: str = "/", max_age: int | None = None
    ) -> None:
        parts = [f"{name}={value}", f"Path={path}", "HttpOnly", "SameSite=Strict"]
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        self.headers.append(("Set-Cookie", "; ".join(parts)))

    def __call__(self, start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = self.body.encode() if isinstance(self.body, str) else self.body
        phrase = HTTPStatus(self.status).phrase
        headers = [
            ("Content-Type", self.content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", "same-origin"),
            ("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self'"),
            *self.headers,
        ]
        start_response(f"{self.status} {phrase}", headers)
        return [body]


def redirect(location: str) -> Response:
    return Response(b"", status=303, headers=[("Location", location)])


def text(body: str, status: int) -> Response:
    return Response(body, status=status, content_type="text/plain; charset=utf-8")


Handler = Callable[..., Response]


class Router:
    """Routes like `/event/<id>`; a segment in angle brackets is one path part."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.sub(r"<(\w+)>", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method, re.compile(f"^{regex}$"), handler))

    def match(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], bool]:
        """(handler, path parameters, whether the path exists under another method)."""
        other = False
        for m, regex, handler in self._routes:
            found = regex.match(path)
            if found:
                if m == method:
                    return handler, found.groupdict(), True
                other = True
        return None, {}, other
