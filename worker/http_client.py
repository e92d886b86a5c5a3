"""POST an event body to Moloco: urllib3 connection pools, read once from the environment.

The worker sends through urllib3, the connection pooling that `requests` itself is built on,
without requests' per-call layers (hooks, cookie jar, redirect and environment handling): a
POST costs about 300 µs of CPU here instead of about 800 µs (bench/README.md), and a POST's CPU
is most of an event's cost in the worker. What requests would have read from the environment is
read once instead: the CA bundle (`REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE`, else certifi's) and
the proxy (`https_proxy`, `http_proxy`, `all_proxy`, honouring `no_proxy`).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import certifi
import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError

from worker.backoff import parse_retry_after

CONNECT_TIMEOUT_S = 3.05
MESSAGE_MAX_CHARS = 500
# Most of a response body read: Moloco's answers are a few hundred bytes of JSON.
RESPONSE_MAX_BYTES = 64 * 1024
_CA_VARS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


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


def ca_bundle() -> str:
    """The CA bundle requests would use: the environment's, else certifi's."""
    return next((os.environ[v] for v in _CA_VARS if os.environ.get(v)), certifi.where())


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url`, or None (none set, or `no_proxy` matches)."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


class HttpClient:
    """Keep-alive POSTs to Moloco, safe to share between threads (one per worker process).

    `pool_size` connections are kept per host, as many as threads send at once; a POST is never
    retried here (the ledger retries, with backoff, and knows whether Moloco answered).
    """

    def __init__(self, *, timeout_s: float, pool_size: int = 10) -> None:
        connect_s = min(CONNECT_TIMEOUT_S, timeout_s)
        self._timeout = urllib3.Timeout(connect=connect_s, read=timeout_s)
        # The read timeout bounds each wait for a byte; a server trickling its answer a byte at
        # a time would hold a POST without end. This bounds the whole exchange (under the
        # lease: settings require a lease of more than twice the timeout).
        self._deadline_s = connect_s + timeout_s
        self._options: dict[str, Any] = {
            "maxsize": pool_size,
            "block": False,
            "retries": False,
            "timeout": self._timeout,
            "ca_certs": ca_bundle(),
        }
        self._direct = urllib3.PoolManager(num_pools=16, **self._options)
        self._proxied: dict[str, urllib3.ProxyManager] = {}
        self._routes: dict[str, urllib3.PoolManager] = {}

    def _manager(self, url: str) -> urllib3.PoolManager:
        manager = self._routes.get(url)
        if manager is None:
            proxy = proxy_for(url)
            if proxy is None:
                manager = self._direct
            else:
                if proxy not in self._proxied:
                    self._proxied[proxy] = urllib3.ProxyManager(proxy, **self._options)
                manager = self._proxied[proxy]
            self._routes[url] = manager
        return manager

    def _open(self, method: str, url: str, started: float, **kwargs: Any) -> Any:
        """The urllib3 response, or a status-None `Response` (timeout, failed connection)."""
        try:
            return self._manager(url).urlopen(
                method, url, redirect=False, retries=False, preload_content=False, **kwargs
            )
        except TimeoutError as exc:
            # urllib3 files a refused or unresolvable connection under ConnectTimeoutError too.
            if not isinstance(exc, NewConnectionError):
                return Response(None, "timeout", None, _ms_since(started))
            return _connection_error(exc, started)
        except (HTTPError, OSError) as exc:
            return _connection_error(exc, started)

    def post(self, url: str, api_key: str, body: str) -> Response:
        """POST `body` (JSON) to `url`; connection failures and timeouts answer status None."""
        started = time.monotonic()
        r = self._open(
            "POST",
            url,
            started,
            body=body.encode(),
            headers={"x-api-key": api_key, "Content-Type": "application/json"},
        )
        if isinstance(r, Response):
            return r
        # The status line is the answer: a 200 whose body then breaks off was still accepted,
        # and resending it would only make a duplicate.
        text = _read_capped(r, started + self._deadline_s)
        return Response(
            r.status,
            moloco_message(text) if r.status >= 300 else "",
            parse_retry_after(r.headers.get("Retry-After")),
            _ms_since(started),
        )

    def probe(self, url: str) -> tuple[Response, str | None]:
        """GET `url` once (`eventfwd doctor`): the answer, and the server's `Date` header."""
        started = time.monotonic()
        r = self._open("GET", url, started)
        if isinstance(r, Response):
            return r, None
        try:
            r.drain_conn()
        finally:
            r.release_conn()
        return Response(r.status, "", None, _ms_since(started)), r.headers.get("Date")

    def close(self) -> None:
        """Close every pooled connection."""
        self._direct.clear()
        for manager in self._proxied.values():
            manager.clear()


def _read_capped(r: Any, deadline: float) -> str:
    """Read the body up to `RESPONSE_MAX_BYTES` and the deadline; drop the connection if cut."""
    chunks: list[bytes] = []
    size, complete = 0, False
    try:
        while size < RESPONSE_MAX_BYTES:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                break
            sock = getattr(r.connection, "sock", None)
            if sock is not None:
                sock.settimeout(remaining_s)
            # read1: whatever one receive brings, so the deadline is looked at between receives
            data = r.read1(amt=min(16_384, RESPONSE_MAX_BYTES - size), decode_content=True)
            if not data:
                complete = True
                break
            chunks.append(data)
            size += len(data)
        text = b"".join(chunks).decode("utf-8", "replace")
    except (HTTPError, OSError) as exc:
        text = f"unreadable response body ({type(exc).__name__})"
    finally:
        if not complete:
            r.close()  # unread bytes left: the connection cannot serve another request
        r.release_conn()
    return text


def _connection_error(exc: BaseException, started: float) -> Response:
    return Response(None, f"connection error ({type(exc).__name__})", None, _ms_since(started))


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
