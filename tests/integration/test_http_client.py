"""`HttpClient` on the wire: the fake Moloco sink, a TLS server of a test CA, a loopback proxy."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import certifi
import pytest

from eventfwd.core.schema import validate_event
from tests.conftest import example_events
from tests.support.tls import Certs, make_certs
from worker.http_client import MESSAGE_MAX_CHARS, HttpClient, moloco_message

pytestmark = pytest.mark.integration
PLATFORM = "acme"
PATH = f"/rmp/event/v1/platforms/{PLATFORM}/userevents"


@pytest.fixture
def clients() -> Iterator[list[HttpClient]]:
    """Clients made by a test, closed after it."""
    made: list[HttpClient] = []
    yield made
    for client in made:
        client.close()


def client(clients: list[HttpClient], timeout_s: float = 2.0) -> HttpClient:
    """A client made now, so that it reads the environment as the test has set it."""
    made = HttpClient(timeout_s=timeout_s)
    clients.append(made)
    return made


def body() -> str:
    return validate_event(example_events()[0]).body


def endpoint(base_url: str, platform: str = PLATFORM) -> str:
    return f"{base_url}/rmp/event/v1/platforms/{platform}/userevents"


# -- a small HTTP server: the TLS endpoint and the forward proxy ------------------------------


@dataclass
class Seen:
    request_line: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class LocalServer:
    """An http.server on loopback that records each request and answers `status` with `{}`."""

    server: ThreadingHTTPServer
    seen: list[Seen] = field(default_factory=list)
    status: int = 200
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        port: int = self.server.server_address[1]
        return port


def _handler(state: dict[str, LocalServer]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length)
            local = state["server"]
            local.seen.append(
                Seen(
                    self.requestline,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    data,
                )
            )
            payload = b"{}"
            self.send_response(local.status)
            for name, value in local.extra_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    return Handler


def _serve(tls: ssl.SSLContext | None = None) -> Iterator[LocalServer]:
    state: dict[str, LocalServer] = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    # a refused TLS handshake is the client's doing, not an error worth printing
    server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    local = LocalServer(server)
    state["server"] = local
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield local
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https_server(certs: Certs) -> Iterator[LocalServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certs.cert), str(certs.key))
    yield from _serve(context)


@pytest.fixture
def plain_server() -> Iterator[LocalServer]:
    yield from _serve()


@pytest.fixture
def proxy() -> Iterator[LocalServer]:
    """A forward proxy that answers every request itself (200 `{}`), recording its line."""
    yield from _serve()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- answers from the sink --------------------------------------------------------------------


def test_an_accepted_event_answers_200_with_no_message(
    sink: Any, clients: list[HttpClient]
) -> None:
    sent = body()
    response = client(clients).post(endpoint(sink.url), "test-key", sent)
    assert (response.status, response.message, response.retry_after_s) == (200, "", None)
    assert response.duration_ms >= 0
    (received,) = sink.events()
    assert received["platform_id"] == PLATFORM
    assert received["event"] == json.loads(sent)


def test_many_threads_share_one_client(sink: Any, clients: list[HttpClient]) -> None:
    http = client(clients)
    bodies = [
        validate_event({**e, "id": f"t-{i}"}).body for i, e in enumerate(example_events() * 3)
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda b: http.post(endpoint(sink.url), "test-key", b), bodies))
    assert [r.status for r in responses] == [200] * len(bodies)
    stats = sink.stats()
    assert (stats["accepted"], stats["duplicates"]) == (len(bodies), 0)


def test_a_refusal_carries_molocos_message_from_its_json_body(
    sink: Any, clients: list[HttpClient]
) -> None:
    sink.add_fault({"fault": 400, "count": 1, "message": "missing page_id"})
    http = client(clients)
    response = http.post(endpoint(sink.url), "test-key", body())
    assert (response.status, response.message, response.retry_after_s) == (
        400,
        "missing page_id",
        None,
    )
    # the sink's own checks answer in the same shape
    assert http.post(endpoint(sink.url), "wrong-key", body()).message == "invalid api key"
    assert http.post(endpoint(sink.url), "", body()).status == 401
    invalid = http.post(endpoint(sink.url), "test-key", json.dumps({"id": "x"}))
    assert invalid.status == 400
    assert invalid.message and not invalid.message.startswith("{")
    assert sink.stats()["accepted"] == 0


def test_molocos_message_falls_back_to_the_start_of_a_body_that_is_not_its_json() -> None:
    assert moloco_message('{"code": 3, "message": "bad", "details": []}') == "bad"
    assert moloco_message("  <html>upstream error</html>\n") == "<html>upstream error</html>"
    assert moloco_message('{"code": 3}') == '{"code": 3}'
    assert moloco_message('["message"]') == '["message"]'
    assert moloco_message("x" * 2000) == "x" * MESSAGE_MAX_CHARS
    assert moloco_message(json.dumps({"message": "y" * 2000})) == "y" * MESSAGE_MAX_CHARS


def test_a_429_gives_its_retry_after_in_seconds(sink: Any, clients: list[HttpClient]) -> None:
    sink.add_fault({"fault": 429, "retry_after_s": 7, "count": 1})
    sink.add_fault({"fault": 503, "count": 1})
    http = client(clients)
    throttled = http.post(endpoint(sink.url), "test-key", body())
    assert (throttled.status, throttled.retry_after_s) == (429, 7.0)
    assert throttled.message == "request denied by throttler, try again later"
    unavailable = http.post(endpoint(sink.url), "test-key", body())
    assert (unavailable.status, unavailable.retry_after_s) == (503, None)
    assert unavailable.message == "service unavailable"


def test_no_answer_in_time_is_a_timeout_and_the_client_keeps_working(
    sink: Any, clients: list[HttpClient]
) -> None:
    sink.add_fault({"fault": "hang", "count": 1})
    http = client(clients, timeout_s=0.3)
    response = http.post(endpoint(sink.url), "test-key", body())
    assert (response.status, response.message, response.retry_after_s) == (None, "timeout", None)
    assert 250 <= response.duration_ms < 2000
    assert http.post(endpoint(sink.url), "test-key", body()).status == 200


def test_a_reset_connection_is_a_connection_error_and_the_client_keeps_working(
    sink: Any, clients: list[HttpClient]
) -> None:
    http = client(clients)
    assert http.post(endpoint(sink.url), "test-key", body()).status == 200  # a pooled connection
    sink.add_fault({"fault": "reset", "count": 1})
    response = http.post(endpoint(sink.url), "test-key", body())
    assert response.status is None
    assert response.message.startswith("connection error (") and response.message.endswith(")")
    assert response.message != "connection error ()"
    assert http.post(endpoint(sink.url), "test-key", body()).status == 200
    assert sink.stats()["accepted"] == 2


def test_a_refused_connection_is_a_connection_error_not_a_timeout(
    clients: list[HttpClient],
) -> None:
    response = client(clients).post(endpoint(f"http://127.0.0.1:{closed_port()}"), "k", body())
    assert response.status is None
    assert response.message.startswith("connection error ("), response.message


def test_a_200_whose_body_breaks_off_is_still_a_200(sink: Any, clients: list[HttpClient]) -> None:
    sink.add_fault({"fault": "truncated", "count": 1})
    http = client(clients)
    response = http.post(endpoint(sink.url), "test-key", body())
    assert (response.status, response.message) == (200, "")
    assert sink.stats()["accepted"] == 1
    assert http.post(endpoint(sink.url), "test-key", body()).status == 200  # a new connection


def test_a_200_with_a_body_that_is_not_json_is_still_a_200(
    sink: Any, clients: list[HttpClient]
) -> None:
    sink.add_fault({"fault": "malformed", "count": 1})
    response = client(clients).post(endpoint(sink.url), "test-key", body())
    assert (response.status, response.message) == (200, "")
    assert sink.stats()["accepted"] == 1


def test_a_redirect_is_answered_not_followed(
    plain_server: LocalServer, clients: list[HttpClient]
) -> None:
    plain_server.status = 307
    plain_server.extra_headers = {"Location": "/elsewhere"}
    response = client(clients).post(endpoint(f"http://127.0.0.1:{plain_server.port}"), "k", "{}")
    assert response.status == 307
    assert [s.path for s in plain_server.seen] == [PATH]
    (seen,) = plain_server.seen
    assert seen.headers["x-api-key"] == "k"
    assert seen.headers["content-type"] == "application/json"
    assert seen.body == b"{}"


# -- TLS: the CA bundle comes from the environment, else certifi -------------------------------


def https_url(server: LocalServer) -> str:
    return endpoint(f"https://127.0.0.1:{server.port}")


def test_requests_ca_bundle_verifies_the_server(
    https_server: LocalServer,
    certs: Certs,
    clients: list[HttpClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.ca))
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    sent = body()
    response = client(clients).post(https_url(https_server), "test-key", sent)
    assert (response.status, response.message) == (200, "")
    (seen,) = https_server.seen
    assert (seen.path, seen.body) == (PATH, sent.encode())


def test_curl_ca_bundle_is_used_when_requests_ca_bundle_is_not_set(
    https_server: LocalServer,
    certs: Certs,
    clients: list[HttpClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.setenv("CURL_CA_BUNDLE", str(certs.ca))
    assert client(clients).post(https_url(https_server), "test-key", body()).status == 200


def test_without_the_test_ca_the_server_is_not_trusted(
    https_server: LocalServer, clients: list[HttpClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)  # certifi's CAs
    response = client(clients).post(https_url(https_server), "test-key", body())
    assert response.status is None
    assert response.message == "connection error (SSLError)"
    assert https_server.seen == []


def test_requests_ca_bundle_comes_before_curl_ca_bundle(
    https_server: LocalServer,
    certs: Certs,
    clients: list[HttpClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("CURL_CA_BUNDLE", str(certs.ca))
    response = client(clients).post(https_url(https_server), "test-key", body())
    assert response.message == "connection error (SSLError)"


def test_the_ca_bundle_is_read_when_the_client_is_made(
    https_server: LocalServer,
    certs: Certs,
    clients: list[HttpClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.ca))
    http = client(clients)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    assert http.post(https_url(https_server), "test-key", body()).status == 200


# -- proxies: http_proxy / all_proxy, honouring no_proxy; read once per URL --------------------


def proxied_line(url: str) -> str:
    return f"POST {url} HTTP/1.1"


def test_http_proxy_carries_the_request_with_an_absolute_uri(
    sink: Any, proxy: LocalServer, clients: list[HttpClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
    url = endpoint(sink.url)
    response = client(clients).post(url, "test-key", body())
    assert (response.status, response.message) == (200, "")
    (seen,) = proxy.seen
    assert seen.request_line == proxied_line(url)
    assert seen.headers["x-api-key"] == "test-key"
    assert sink.stats()["requests"] == 0  # not sent direct


def test_all_proxy_is_the_fallback(
    sink: Any, proxy: LocalServer, clients: list[HttpClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("all_proxy", f"http://127.0.0.1:{proxy.port}")
    url = endpoint(sink.url)
    assert client(clients).post(url, "test-key", body()).status == 200
    assert [s.request_line for s in proxy.seen] == [proxied_line(url)]
    assert sink.stats()["requests"] == 0


def test_https_proxy_is_not_used_for_an_http_url(
    sink: Any, proxy: LocalServer, clients: list[HttpClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{proxy.port}")
    assert client(clients).post(endpoint(sink.url), "test-key", body()).status == 200
    assert proxy.seen == []
    assert sink.stats()["accepted"] == 1


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.1", "*"])
def test_no_proxy_covering_the_host_goes_direct(
    no_proxy: str,
    sink: Any,
    proxy: LocalServer,
    clients: list[HttpClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("no_proxy", no_proxy)
    assert client(clients).post(endpoint(sink.url), "test-key", body()).status == 200
    assert proxy.seen == []
    assert sink.stats()["accepted"] == 1


def test_no_proxy_for_another_host_still_proxies(
    sink: Any, proxy: LocalServer, clients: list[HttpClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("no_proxy", "example.com")
    assert client(clients).post(endpoint(sink.url), "test-key", body()).status == 200
    assert len(proxy.seen) == 1
    assert sink.stats()["requests"] == 0


def test_the_proxy_is_looked_up_once_per_url(
    sink: Any, proxy: LocalServer, clients: list[HttpClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
    http = client(clients)
    first = endpoint(sink.url)
    assert http.post(first, "test-key", body()).status == 200
    monkeypatch.delenv("http_proxy")
    # the URL already looked up keeps its route; a new URL reads the environment as it is now
    assert http.post(first, "test-key", body()).status == 200
    assert http.post(endpoint(sink.url, "other"), "test-key", body()).status == 200
    assert [s.request_line for s in proxy.seen] == [proxied_line(first)] * 2
    assert sink.stats()["per_platform"] == {"other": {"requests": 1, "accepted": 1}}


def test_an_unreachable_proxy_is_a_connection_error(
    sink: Any, clients: list[HttpClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{closed_port()}")
    response = client(clients).post(endpoint(sink.url), "test-key", body())
    assert response.status is None
    assert response.message.startswith("connection error ("), response.message
    assert sink.stats()["requests"] == 0


def test_a_probe_answers_the_status_and_the_servers_date(
    plain_server: LocalServer, clients: list[HttpClient]
) -> None:
    # http.server answers a GET it has no handler for with 501, and dates every answer
    answer, date = client(clients).probe(f"http://127.0.0.1:{plain_server.port}/")
    assert answer.status == 501 and answer.message == ""
    assert date is not None and date.endswith(" GMT")
    down, no_date = client(clients).probe(f"http://127.0.0.1:{closed_port()}/")
    assert (down.status, no_date) == (None, None)
    assert down.message.startswith("connection error")
