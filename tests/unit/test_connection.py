"""One Redis URL, two readers: redis-py (the ledger) and kombu (the Celery broker). No network.

The ledger's scripts push Celery messages straight into the broker's queue list, so for every
URL both sides must pick the same server, database, credentials and TLS settings.
"""

from __future__ import annotations

import ssl
from typing import Any

import pytest
import redis
from kombu import Connection

from eventfwd.core.connection import (
    BrokerSettings,
    broker_settings,
    check_url,
    connect,
    redact_url,
    redis_py_url,
    sentinel_config,
    sentinel_parts,
)
from eventfwd.core.errors import ConfigError
from eventfwd.core.settings import Settings
from worker.app import VISIBILITY_TIMEOUT_S, celery_config


def kombu_params(broker: BrokerSettings) -> dict[str, Any]:
    """The redis-py connection options kombu's channel would use, without connecting.

    (A kombu Channel pings Redis in `__init__`, so build one without it; `_connparams` is the
    step that turns the Celery settings into redis-py options.)
    """
    conn = Connection(
        broker.url, ssl=broker.use_ssl or False, transport_options=broker.transport_options
    )
    transport = conn.transport
    channel = transport.Channel.__new__(transport.Channel)
    channel.connection = transport
    for key, value in broker.transport_options.items():
        setattr(channel, key, value)
    params: dict[str, Any] = channel._connparams()
    return params


def ledger_params(url: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = connect(url).connection_pool.connection_kwargs
    return kwargs


@pytest.mark.parametrize(
    ("url", "db"),
    [
        ("redis://localhost:6379/0", 0),
        ("redis://localhost", 0),
        ("redis://:secret@localhost:6380/2", 2),
        ("redis://localhost/2?db=7", 7),
        ("rediss://:p%40ss@redis.example:6380/3?ssl_cert_reqs=required", 3),
        ("rediss://redis.example/4?ssl_cert_reqs=CERT_NONE", 4),
        ("unix:///run/redis/redis.sock", 0),
        ("unix://:secret@/run/redis/redis.sock?db=5", 5),
    ],
)
def test_ledger_and_broker_pick_the_same_server_and_database(url: str, db: int) -> None:
    ledger, broker = ledger_params(url), kombu_params(broker_settings(url))
    assert ledger.get("db", 0) == broker["db"] == db  # redis-py: no db means 0
    assert ledger.get("password") == broker.get("password")
    if url.startswith("unix://"):
        assert ledger["path"] == broker["path"] == "/run/redis/redis.sock"
    else:
        assert (ledger["host"], ledger.get("port", 6379)) == (broker["host"], broker["port"])


def test_sentinel_ledger_and_broker_ask_every_sentinel_for_the_same_master_and_db() -> None:
    url = (
        "sentinel://:m%40ster@10.0.0.1:26379;sentinel://10.0.0.2/6"
        "?master_name=orders&sentinel_password=s3"
    )
    ledger = connect(url, socket_timeout=3)
    pool = ledger.connection_pool
    assert (pool.service_name, pool.connection_kwargs["db"]) == ("orders", 6)  # type: ignore[attr-defined]
    assert pool.connection_kwargs["password"] == "m@ster"
    sentinels = pool.sentinel_manager.sentinels  # type: ignore[attr-defined]
    kwargs = [s.connection_pool.connection_kwargs for s in sentinels]
    assert [(k["host"], k["port"]) for k in kwargs] == [("10.0.0.1", 26379), ("10.0.0.2", 26379)]
    assert all(k["password"] == "s3" for k in kwargs)

    broker = broker_settings(url)
    assert (
        broker.url == "sentinel://:m%40ster@10.0.0.1:26379/6;sentinel://:m%40ster@10.0.0.2:26379/6"
    )
    assert broker.transport_options["master_name"] == "orders"
    assert broker.transport_options["sentinel_kwargs"]["password"] == "s3"
    params = kombu_params(broker)
    assert (params["db"], params["password"]) == (6, "m@ster")
    assert [h for h in Connection(broker.url).alt] == broker.url.split(";")


def test_a_dead_sentinel_is_skipped_at_once_not_retried() -> None:
    # redis-py's default would retry each dead sentinel 10 times with backoff (~4 s)
    pool: Any = connect("sentinel://h1:26379;sentinel://h2:26379").connection_pool
    broker = broker_settings("sentinel://h1:26379")
    for kwargs in (
        pool.sentinel_manager.sentinel_kwargs,
        broker.transport_options["sentinel_kwargs"],
    ):
        assert kwargs["retry"].get_retries() == 0


def test_sentinel_tls_reaches_the_ledger_and_the_broker_on_both_hops() -> None:
    url = (
        "sentinel://:pw@10.0.0.1:26379;sentinel://10.0.0.2/3?master_name=m"
        "&ssl=true&ssl_ca_certs=/etc/ca.pem&ssl_check_hostname=true"
    )
    tls = {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": "/etc/ca.pem"}
    tls["ssl_check_hostname"] = True
    pool: Any = connect(url).connection_pool
    assert pool.connection_class.__name__ == "SentinelManagedSSLConnection"
    assert {k: pool.connection_kwargs[k] for k in tls} == tls
    for sentinel in pool.sentinel_manager.sentinels:
        sentinel_pool = sentinel.connection_pool
        assert issubclass(sentinel_pool.connection_class, redis.SSLConnection)
        assert {k: sentinel_pool.connection_kwargs[k] for k in tls} == tls

    broker = broker_settings(url)
    assert broker.use_ssl == tls  # kombu: the master over its Sentinel-managed TLS connection
    assert broker.transport_options["sentinel_kwargs"] == {
        **broker.transport_options["sentinel_kwargs"],
        "ssl": True,
        **tls,
    }
    params = kombu_params(broker)
    assert params["connection_class"].__name__ == "SentinelManagedSSLConnection"
    assert {k: params[k] for k in tls} == tls
    check_url(url)


@pytest.mark.parametrize(
    ("query", "master", "sentinels"),
    [
        ("", False, False),
        ("?ssl=false", False, False),
        ("?ssl=true", True, True),  # certificates verified by default, on both hops
        ("?ssl=on&sentinel_ssl=off", True, False),
        ("?sentinel_ssl=true", False, True),
    ],
)
def test_sentinel_tls_per_hop(query: str, master: bool, sentinels: bool) -> None:
    cfg = sentinel_config(f"sentinel://h{query}")
    for tls, wanted in ((cfg.master_tls, master), (cfg.sentinel_tls, sentinels)):
        assert tls == ({"ssl_cert_reqs": ssl.CERT_REQUIRED} if wanted else None)
    assert ("ssl" in cfg.master_kwargs()) is master
    assert ("ssl" in cfg.sentinel_kwargs()) is sentinels
    assert (broker_settings(f"sentinel://h{query}").use_ssl is not None) is master


def test_sentinel_defaults_and_the_old_tuple_form() -> None:
    cfg = sentinel_config("sentinel://h1")
    assert (cfg.hosts, cfg.db, cfg.master_name, cfg.password) == (
        [("h1", 26379)],
        0,
        "mymaster",
        None,
    )
    assert sentinel_parts("sentinel://:pw@h1:1;sentinel://h2:2/3?master_name=m") == (
        [("h1", 1), ("h2", 2)],
        3,
        "m",
        "pw",
    )
    assert broker_settings("sentinel://h1").url == "sentinel://h1:26379/0"
    assert broker_settings("sentinel://[::1]:5000/1").url == "sentinel://[::1]:5000/1"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"ssl_cert_reqs": ssl.CERT_REQUIRED}),  # kombu alone would not verify at all
        ("?ssl_cert_reqs=required", {"ssl_cert_reqs": ssl.CERT_REQUIRED}),
        ("?ssl_cert_reqs=CERT_REQUIRED", {"ssl_cert_reqs": ssl.CERT_REQUIRED}),
        ("?ssl_cert_reqs=optional", {"ssl_cert_reqs": ssl.CERT_OPTIONAL}),
        ("?ssl_cert_reqs=none", {"ssl_cert_reqs": ssl.CERT_NONE}),
        (
            "?ssl_cert_reqs=required&ssl_ca_certs=/etc/ca.pem&ssl_check_hostname=false"
            "&ssl_certfile=/etc/c.pem&ssl_keyfile=/etc/c.key",
            {
                "ssl_cert_reqs": ssl.CERT_REQUIRED,
                "ssl_ca_certs": "/etc/ca.pem",
                "ssl_check_hostname": False,
                "ssl_certfile": "/etc/c.pem",
                "ssl_keyfile": "/etc/c.key",
            },
        ),
    ],
)
def test_tls_options_reach_both_sides(query: str, expected: dict[str, Any]) -> None:
    url = f"rediss://redis.example:6380/1{query}"
    broker = broker_settings(url)
    assert broker.url == "rediss://redis.example:6380/1"  # kombu rejects unknown query keys
    assert broker.use_ssl == expected
    params = kombu_params(broker)
    assert params["connection_class"].__name__ == "SSLConnection"
    assert all(params[k] == v for k, v in expected.items())
    ledger = connect(url)
    assert ledger.connection_pool.connection_class.__name__ == "SSLConnection"
    kwargs = ledger.connection_pool.connection_kwargs
    names = {ssl.CERT_REQUIRED: "required", ssl.CERT_OPTIONAL: "optional", ssl.CERT_NONE: "none"}
    for key, value in expected.items():
        want = names[value] if key == "ssl_cert_reqs" else value
        assert kwargs.get(key, "required" if key == "ssl_cert_reqs" else None) == want


def test_redis_py_url_spells_options_the_way_redis_py_reads_them() -> None:
    assert redis_py_url("redis://h") == "redis://h/0"
    assert (
        redis_py_url("rediss://h:1/2?ssl_cert_reqs=CERT_NONE&ssl_ca_certs=/a b/ca.pem")
        == "rediss://h:1/2?ssl_cert_reqs=none&ssl_ca_certs=%2Fa+b%2Fca.pem"
    )
    assert redis_py_url("unix:///s.sock?db=3") == "unix:///s.sock?db=3"


def test_broker_urls_for_plain_tcp_and_unix_sockets() -> None:
    assert broker_settings("redis://:pw@h:6380/2") == BrokerSettings("redis://:pw@h:6380/2", {})
    assert broker_settings("redis://h?db=4").url == "redis://h/4"
    assert broker_settings("unix://:pw@/run/r.sock?db=5").url == (
        "redis+socket://:pw@/run/r.sock?virtual_host=5"
    )
    assert broker_settings("unix:///run/r.sock").url == "redis+socket:///run/r.sock?virtual_host=0"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis://h/0?socket_timeout=5", "redis:// URLs take no 'socket_timeout' option"),
        ("redis://h/0?ssl_cert_reqs=required", "ssl_cert_reqs needs a rediss:// URL"),
        ("unix:///s.sock?ssl_ca_certs=/ca.pem", "ssl_ca_certs needs a rediss:// URL"),
        ("rediss://h/0?ssl_cert_reqs=maybe", "ssl_cert_reqs='maybe' is not one of"),
        ("rediss://h/0?ssl_check_hostname=perhaps", "ssl_check_hostname='perhaps'"),
        ("rediss://h/0?ssl_ca_certs=", "ssl_ca_certs is empty"),
        ("redis://h/zero", "the database must be a number"),
        ("redis://h/0?db=x", "the database must be a number"),
        ("redis://h:99999/0", "the port is not a number"),
        ("redis:///0", "has no host"),
        ("unix://host/s.sock", "unix:///path/to/redis.sock"),
        ("unix://", "unix:///path/to/redis.sock"),
        ("redis://h/0?db=1&db=2", "db is given twice"),
        ("sentinel://h1/1;sentinel://h2/2", "different databases"),
        ("sentinel://a:b@h1;sentinel://c:d@h2", "different credentials"),
        ("sentinel://h1?master_name=a;sentinel://h2?master_name=b", "different values"),
        ("sentinel://h1;redis://h2", "is not sentinel://host:port"),
        ("sentinel://h1?db=1", "sentinel:// URLs take no 'db' option"),
        ("sentinel://h1?ssl_ca_certs=/ca.pem", "ssl_ca_certs needs ssl=true"),
        ("sentinel://h1?ssl=maybe", "ssl='maybe' is not true or false"),
        ("sentinel://h1?ssl=true&sentinel_ssl=2", "sentinel_ssl='2' is not true or false"),
        ("sentinel://h1?ssl=true&ssl_cert_reqs=no", "ssl_cert_reqs='no' is not one of"),
        ("memcached://h", "is not a redis://, rediss://, unix:// or sentinel:// URL"),
    ],
)
def test_a_url_either_side_would_misread_is_refused_up_front(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match="EVENTFWD_REDIS_URL") as err:
        broker_settings(url)
    assert says in str(err.value)
    with pytest.raises(ConfigError):
        connect(url)


def test_errors_and_logs_never_show_a_password() -> None:
    with pytest.raises(ConfigError) as err:
        connect("redis://:hunter2@h/0?bogus=1")
    assert "hunter2" not in str(err.value)
    url = "sentinel://u:hunter2@h1;sentinel://h2/0?master_name=m&sentinel_password=s3cr3t"
    assert "hunter2" not in redact_url(url)
    assert "s3cr3t" not in redact_url(url)
    assert redact_url(url).endswith("master_name=m&sentinel_password=***")


def test_celery_config_takes_the_broker_settings() -> None:
    def conf(url: str) -> dict[str, Any]:
        return celery_config(Settings(redis_url=url))

    plain = conf("redis://h:6379/1")
    assert plain["broker_url"] == "redis://h:6379/1"
    assert plain["broker_use_ssl"] is False
    assert plain["broker_transport_options"]["visibility_timeout"] == VISIBILITY_TIMEOUT_S

    tls = conf("rediss://h:6380/1?ssl_cert_reqs=required&ssl_ca_certs=/ca.pem")
    assert tls["broker_url"] == "rediss://h:6380/1"
    assert tls["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": "/ca.pem"}

    sentinel = conf("sentinel://h1:26379;sentinel://h2:26379/0?master_name=mymaster")
    assert sentinel["broker_url"] == "sentinel://h1:26379/0;sentinel://h2:26379/0"
    options = sentinel["broker_transport_options"]
    assert (options["master_name"], options["visibility_timeout"]) == (
        "mymaster",
        VISIBILITY_TIMEOUT_S,
    )


# -- passwords with URL delimiters (issue #11, item 1) -----------------------------------------

# Each secret is written percent-encoded: both readers must decode it to the same password.
ENCODED_PASSWORDS = {
    "Pa;ss": "Pa%3Bss",
    "Pa@ss": "Pa%40ss",
    "Pa/ss": "Pa%2Fss",
    "Pa?ss": "Pa%3Fss",
    "Pa#ss": "Pa%23ss",
    "a;b@c/d?e#f:g%": "a%3Bb%40c%2Fd%3Fe%23f:g%25",
}


@pytest.mark.parametrize("secret", sorted(ENCODED_PASSWORDS))
@pytest.mark.parametrize("template", ["redis://:{}@h:6380/2", "rediss://u:{}@h:6380/2"])
def test_a_percent_encoded_password_works_for_the_ledger_and_the_broker(
    secret: str, template: str
) -> None:
    url = template.format(ENCODED_PASSWORDS[secret])
    ledger, broker = ledger_params(url), kombu_params(broker_settings(url))
    assert ledger["password"] == broker["password"] == secret
    assert (ledger["host"], ledger["db"]) == (broker["host"], broker["db"]) == ("h", 2)
    Settings.from_mapping({"EVENTFWD_REDIS_URL": url})


def test_a_percent_encoded_password_works_for_sentinels_too() -> None:
    url = "sentinel://:Pa%3Bss%40x@h1:26379;sentinel://h2:26379/3?master_name=m"
    cfg = sentinel_config(url)
    assert cfg.password == "Pa;ss@x"
    broker = broker_settings(url)
    assert kombu_params(broker)["password"] == "Pa;ss@x"
    assert len(Connection(broker.url).alt) == 2


@pytest.mark.parametrize(
    "url",
    [
        "redis://:Pa;ssw0rdTAIL@h:6379/0",
        "redis://:Pa@ssw0rdTAIL@h:6379/0",
        "redis://:Pa/ssw0rdTAIL@h:6379/0",
        "redis://:Pa?ssw0rdTAIL@h:6379/0",
        "redis://:Pa#ssw0rdTAIL@h:6379/0",
        "rediss://user:Pa;ssw0rdTAIL@h:6379/0",
        "unix://:Pa;ssw0rdTAIL@/run/redis.sock",
        "sentinel://:Pa;ssw0rdTAIL@h1:26379;sentinel://h2:26379/0",
        "sentinel://:Pa@ssw0rdTAIL@h1:26379/0",
    ],
)
def test_a_raw_delimiter_in_the_password_is_refused_at_start_without_echoing_it(
    url: str,
) -> None:
    for attempt in (
        lambda: Settings.from_mapping({"EVENTFWD_REDIS_URL": url}),
        lambda: broker_settings(url),
        lambda: connect(url),
    ):
        with pytest.raises(ConfigError, match="EVENTFWD_REDIS_URL") as err:
            attempt()
        message = str(err.value)
        assert "Pa" not in message and "ssw0rd" not in message and "TAIL" not in message
        assert "user:" not in message  # no part of the userinfo, the user name included
        assert "percent-encode" in message


@pytest.mark.parametrize(
    "url",
    [
        "redis://:Pa;ssw0rdTAIL@h:6379/0",
        "redis://:Pa@ssw0rdTAIL@h:6379/0",
        "redis://:Pa/ssw0rdTAIL@h:6379/0",
        "redis://:Pa?ssw0rdTAIL@h:6379/0",
        "redis://:Pa#ssw0rdTAIL@h:6379/0",
        "redis://user:Pa%40ssw0rdTAIL@h:6379/0",
        "sentinel://:Pa;ssw0rdTAIL@h1:26379;sentinel://:Pa;ssw0rdTAIL@h2:26379/0",
        "sentinel://h1/0?sentinel_password=Pa;ssw0rdTAIL",
    ],
)
def test_redaction_parses_the_url_and_hides_every_part_of_the_password(url: str) -> None:
    shown = redact_url(url)
    assert "ssw0rd" not in shown and "TAIL" not in shown, shown
    assert "***" in shown


def test_broker_connections_have_a_connect_and_a_socket_timeout() -> None:
    for url in ("redis://h:6379/1", "sentinel://h1:26379/0?master_name=m"):
        config = celery_config(Settings(redis_url=url))
        options = config["broker_transport_options"]
        broker = BrokerSettings(config["broker_url"], options)
        params = kombu_params(broker)
        assert 0 < params["socket_connect_timeout"] <= 10
        assert 1 < params["socket_timeout"] <= 60  # above kombu's 1 s BRPOP poll


def test_a_producer_only_install_checks_urls_without_kombu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "kombu", None)  # `import kombu` raises ImportError
    assert check_url("redis://:s3cret@localhost:6379/0").url == "redis://:s3cret@localhost:6379/0"
    with pytest.raises(ConfigError):  # our own parse still refuses what kombu would misread
        Settings.from_mapping({"EVENTFWD_REDIS_URL": "redis://:Pa;ss@localhost:6379/0"})
