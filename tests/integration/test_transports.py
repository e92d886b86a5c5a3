"""The other ways to reach Redis: TLS (`rediss://`), Sentinel (`sentinel://`, plain and TLS) and a
unix socket.

Each test runs the ledger (producer) and a real worker and beat (the Celery broker) on the same
URL and checks delivery at the sink. Every server uses a database other than 0, so a broker that
read another database than the ledger would never see the ledger's messages. A 503 first makes
the delivery need a retry, which only beat's pump can publish: beat goes over the broker too.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu.exceptions import OperationalError

from eventfwd.core.connection import connect
from eventfwd.core.settings import Settings
from eventfwd.devkit.localredis import free_port
from producers import EventProducer
from tests.conftest import example_events
from tests.support.sentinel import RedisProcess, durable_args, start_sentinel
from tests.support.stack import Stack, stacks, wait_for
from tests.support.tls import Certs, make_certs, tls_args
from worker.app import create_app

pytestmark = pytest.mark.integration
PLATFORM = "acme"
MakeStack = Callable[[str], Stack]


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return make_certs(tmp_path / "certs")


@pytest.fixture
def tls_redis(tmp_path: Path, certs: Certs) -> Iterator[int]:
    """A redis-server that speaks only TLS; yields its port."""
    port = free_port()
    server = RedisProcess(
        "redis-tls",
        [*durable_args(tmp_path / "redis-tls"), *tls_args(certs, port)],
        tmp_path / "redis-tls",
        lambda: redis.Redis(
            port=port, ssl=True, ssl_ca_certs=str(certs.ca), socket_connect_timeout=0.2
        ),
    )
    server.start()
    yield port
    server.stop()


SENTINEL_MASTER = "eventfwd-test"


@contextmanager
def running(server: RedisProcess) -> Iterator[RedisProcess]:
    """`server` started (if it is not yet), and stopped however the block ends."""
    if server.proc is None:
        server.start()
    try:
        yield server
    finally:
        server.stop()


MASTER_PASSWORD = "master-secret"
SENTINEL_PASSWORD = "sentinel-secret"


@pytest.fixture
def sentinel_redis(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A password-protected master and a password-protected sentinel watching it.

    Yields (master port, sentinel port).
    """
    master_port = free_port()
    master = RedisProcess(
        "redis-master",
        [
            *durable_args(tmp_path / "master"),
            *("--port", str(master_port), "--requirepass", MASTER_PASSWORD),
        ],
        tmp_path / "master",
        lambda: redis.Redis(port=master_port, password=MASTER_PASSWORD, socket_connect_timeout=0.2),
    )
    with running(master):
        sentinel, sentinel_port = start_sentinel(
            tmp_path / "sentinel", master_port, SENTINEL_MASTER, password=SENTINEL_PASSWORD
        )
        with running(sentinel):
            client = redis.Redis(port=sentinel_port, password=SENTINEL_PASSWORD)
            client.execute_command("SENTINEL", "SET", SENTINEL_MASTER, "auth-pass", MASTER_PASSWORD)
            client.close()
            yield master_port, sentinel_port


@pytest.fixture
def tls_sentinel_redis(tmp_path: Path, certs: Certs) -> Iterator[tuple[int, int]]:
    """A master and a sentinel that both speak only TLS. Yields (master port, sentinel port)."""
    master_port = free_port()
    master = RedisProcess(
        "redis-master-tls",
        [*durable_args(tmp_path / "master-tls"), *tls_args(certs, master_port)],
        tmp_path / "master-tls",
        lambda: redis.Redis(
            port=master_port, ssl=True, ssl_ca_certs=str(certs.ca), socket_connect_timeout=0.2
        ),
    )
    with running(master):
        sentinel, sentinel_port = start_sentinel(
            tmp_path / "sentinel-tls", master_port, SENTINEL_MASTER, tls=certs
        )
        with running(sentinel):
            yield master_port, sentinel_port


@pytest.fixture
def unix_redis(tmp_path: Path) -> Iterator[Path]:
    """A redis-server on a unix socket only; yields the socket's path."""
    # a socket path must stay under ~100 bytes, and tmp_path can be longer
    with tempfile.TemporaryDirectory(prefix="efw") as short:
        socket_path = Path(short) / "redis.sock"
        server = RedisProcess(
            "redis-unix",
            [
                *durable_args(tmp_path / "redis-unix"),
                *("--port", "0", "--unixsocket", str(socket_path), "--unixsocketperm", "700"),
            ],
            tmp_path / "redis-unix",
            lambda: redis.Redis(unix_socket_path=str(socket_path), socket_connect_timeout=0.2),
        ).start()
        yield socket_path
        server.stop()


@pytest.fixture
def stack_for(sink: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[MakeStack]:
    """Like `make_stack`, on the test's own Redis URL. Request it after the server fixture,
    so that the worker and beat stop before their Redis does."""
    with stacks(sink.url, tmp_path, request) as make:
        yield make


def deliver_through(stack: Stack, sink: Any) -> None:
    """Enqueue two events; the first meets a 503 and needs beat's pump for its retry."""
    sink.add_fault({"fault": 503, "count": 1})
    worker = stack.worker()
    stack.beat()
    with EventProducer(settings=stack.settings()) as producer:
        ids = producer.enqueue_many(PLATFORM, example_events()[:2])
    wait_for(
        lambda: sorted(e["event"]["id"] for e in sink.events()) == sorted(ids),
        30,
        what="delivery at the sink",
    )
    assert sink.stats()["by_status"] == {"503": 1, "200": 2}
    log = worker.log()
    assert " ready." in log
    assert "could not check Redis persistence" not in log  # the start-up check ran fine
    assert "redis persistence:" not in log


def broker_ping(url: str) -> int:
    """Connect the way the worker's Celery app does; return the database the broker uses."""
    app = create_app(Settings(redis_url=url))
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=0)
        client = conn.default_channel.client
        assert client.ping()
        db: int = client.connection_pool.connection_kwargs["db"]
        return db


def test_rediss_ledger_and_broker_verify_the_server_certificate(
    tls_redis: int, certs: Certs
) -> None:
    base = f"rediss://127.0.0.1:{tls_redis}/2"
    assert broker_ping(f"{base}?ssl_cert_reqs=required&ssl_ca_certs={certs.ca}") == 2
    assert broker_ping(f"{base}?ssl_cert_reqs=none") == 2
    with pytest.raises(OperationalError, match="certificate verify failed"):
        broker_ping(base)  # kombu on its own would not verify a rediss:// URL without options
    verified = connect(f"{base}?ssl_cert_reqs=required&ssl_ca_certs={certs.ca}")
    assert verified.ping()
    verified.set("k", "v")
    # the CERT_ spelling kombu documents, and `none` for self-signed development setups
    assert connect(f"{base}?ssl_cert_reqs=CERT_REQUIRED&ssl_ca_certs={certs.ca}").get("k") == b"v"
    assert connect(f"{base}?ssl_cert_reqs=none").get("k") == b"v"
    # certificates are verified by default: without our CA the handshake fails
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        connect(base, socket_connect_timeout=2).ping()
    url = f"{base}?ssl_cert_reqs=required&ssl_ca_certs={certs.ca}"
    with EventProducer(url) as producer:
        event_id = producer.enqueue(PLATFORM, example_events()[0])
    assert verified.hget(f"eventfwd:ev:{event_id}", "state") is not None
    verified.close()


def test_rediss_worker_and_producer_deliver(
    tls_redis: int, certs: Certs, stack_for: MakeStack, sink: Any
) -> None:
    url = f"rediss://localhost:{tls_redis}/3?ssl_cert_reqs=required&ssl_ca_certs={certs.ca}"
    deliver_through(stack_for(url), sink)


def test_sentinel_worker_and_producer_deliver(
    sentinel_redis: tuple[int, int], stack_for: MakeStack, sink: Any
) -> None:
    master_port, sentinel_port = sentinel_redis
    # the first sentinel is down: clients must go on to the next one
    url = (
        f"sentinel://:{MASTER_PASSWORD}@127.0.0.1:{free_port()};"
        f"sentinel://127.0.0.1:{sentinel_port}/4"
        f"?master_name={SENTINEL_MASTER}&sentinel_password={SENTINEL_PASSWORD}"
    )
    ledger = connect(url, socket_connect_timeout=1, socket_timeout=5)
    script = ledger.register_script("return redis.call('incr', KEYS[1])")
    assert script(keys=["n"]) == 1  # EVALSHA through a Sentinel-managed client
    ledger.close()
    assert broker_ping(url) == 4
    deliver_through(stack_for(url), sink)
    direct = redis.Redis(port=master_port, password=MASTER_PASSWORD, db=4)
    # the ack follows the sink's receipt by a moment
    wait_for(lambda: direct.hget("eventfwd:stats", "delivered") == b"2", 10, what="the acks")
    assert direct.get("n") == b"1"
    direct.close()


def test_sentinel_over_tls_verifies_both_hops_and_delivers(
    tls_sentinel_redis: tuple[int, int], certs: Certs, stack_for: MakeStack, sink: Any
) -> None:
    master_port, sentinel_port = tls_sentinel_redis
    base = f"sentinel://127.0.0.1:{sentinel_port}/6?master_name={SENTINEL_MASTER}"
    url = f"{base}&ssl=true&ssl_ca_certs={certs.ca}"
    ledger = connect(url, socket_connect_timeout=2, socket_timeout=5)
    assert ledger.ping()
    ledger.close()
    assert broker_ping(url) == 6
    # certificates are verified on both hops by default: without our CA nothing connects
    with pytest.raises(redis.ConnectionError):
        connect(f"{base}&ssl=true", socket_connect_timeout=2).ping()
    with pytest.raises(OperationalError):
        broker_ping(f"{base}&ssl=true")
    # plain TCP to a TLS-only sentinel finds no master
    with pytest.raises(redis.ConnectionError):
        connect(base, socket_connect_timeout=2, socket_timeout=2).ping()
    deliver_through(stack_for(url), sink)
    direct = redis.Redis(port=master_port, ssl=True, ssl_ca_certs=str(certs.ca), db=6)
    wait_for(lambda: direct.hget("eventfwd:stats", "delivered") == b"2", 10, what="the acks")
    direct.close()


def test_unix_socket_worker_and_producer_deliver(
    unix_redis: Path, stack_for: MakeStack, sink: Any
) -> None:
    url = f"unix://{unix_redis}?db=5"
    assert broker_ping(url) == 5
    deliver_through(stack_for(url), sink)
    direct = redis.Redis(unix_socket_path=str(unix_redis), db=5)
    # the ack follows the sink's receipt by a moment
    wait_for(lambda: direct.hget("eventfwd:stats", "delivered") == b"2", 10, what="the acks")
    direct.close()
