"""Redis clients for the ledger, and the Celery broker settings, from one URL.

The forms (`EVENTFWD_REDIS_URL`):

    redis://[[user]:password@]host[:port][/db]
    rediss://[[user]:password@]host[:port][/db][?ssl_cert_reqs=required&ssl_ca_certs=/ca.pem]
    unix://[[user]:password@]/path/to/redis.sock[?db=N]
    sentinel://[[user]:password@]host:26379[;sentinel://host2:26379][/db][?master_name=mymaster]
    sentinel://...?master_name=mymaster&ssl=true&ssl_ca_certs=/ca.pem   (TLS, see below)

`rediss://` takes `ssl_cert_reqs` (`required`, the default, `optional` or `none`; the
`CERT_REQUIRED` spelling works too), `ssl_ca_certs`, `ssl_ca_path`, `ssl_certfile`,
`ssl_keyfile` and `ssl_check_hostname`. `sentinel://` takes `master_name` (default `mymaster`)
and `sentinel_password` (for sentinels that need AUTH; the password in the URL is the
master's); `ssl=true` speaks TLS to the master (and to the sentinels, unless
`sentinel_ssl=false`; `sentinel_ssl=true` alone is TLS to the sentinels only), with the same
`ssl_*` options as `rediss://`, applied to both. `db` may be given in the path or as `?db=`
(query wins). Any other query option is a
`ConfigError`: the same URL has to mean the same server and database to redis-py (the ledger)
and to kombu (the broker), because the ledger's scripts push Celery messages straight into the
broker's queue list. `broker_settings()` translates the URL for Celery.

Redis Cluster is not supported: Celery's Redis broker does not support it, and the ledger keeps
an event's keys and the queue on one server so that every transition is one atomic script.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from eventfwd.core.errors import ConfigError

DEFAULT_SENTINEL_MASTER = "mymaster"
DEFAULT_SENTINEL_PORT = 26379
DEFAULT_REDIS_PORT = 6379
# How long the broker waits for one sentinel before asking the next.
BROKER_SENTINEL_TIMEOUT_S = 5.0

_CERT_REQS = {
    "required": ssl.CERT_REQUIRED,
    "optional": ssl.CERT_OPTIONAL,
    "none": ssl.CERT_NONE,
    "cert_required": ssl.CERT_REQUIRED,
    "cert_optional": ssl.CERT_OPTIONAL,
    "cert_none": ssl.CERT_NONE,
}
_CERT_REQS_NAME = {
    ssl.CERT_REQUIRED: "required",
    ssl.CERT_OPTIONAL: "optional",
    ssl.CERT_NONE: "none",
}
_SSL_PATHS = ("ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile")
_SSL_OPTIONS = ("ssl_cert_reqs", "ssl_check_hostname", *_SSL_PATHS)
_QUERY_OPTIONS: dict[str, tuple[str, ...]] = {
    "redis": ("db",),
    "rediss": ("db", *_SSL_OPTIONS),
    "unix": ("db",),
    "sentinel": ("master_name", "sentinel_password", "ssl", "sentinel_ssl", *_SSL_OPTIONS),
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


# What a user name or password may hold unencoded: RFC 3986's userinfo characters less `;`,
# which kombu reads as the separator of failover URLs. Anything else (`; @ / ? #`, spaces) must be
# percent-encoded, or redis-py and kombu would each cut the URL somewhere else.
_USERINFO = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,=:%]*")
_SAFE_USER = re.compile(r"[A-Za-z0-9\-._~%]+")
# Where one URL of a `;`-joined list ends: a `;` followed by a scheme.
_NEXT_URL = re.compile(r";(?=\s*[A-Za-z][A-Za-z0-9+.\-]*://)")
_SECRET_OPTION = re.compile(r"([?&][a-z_]*password=)[^&]*", re.IGNORECASE)
_ENCODE_HINT = "percent-encode ; @ / ? # in a user name or password as %3B %40 %2F %3F %23"


def _authority_split(part: str) -> tuple[str, str | None, str]:
    """(`scheme://`, userinfo or None, the rest) of one URL, the userinfo ending at the last `@`.

    The last `@`, not the first `/`: a password holding a raw `/`, `?` or `#` must still be
    taken for a password, whatever else the URL means.
    """
    scheme, sep, rest = part.partition("://")
    if not sep:
        scheme, rest = "", part
    head = f"{scheme}{sep}"
    at = rest.rfind("@")
    if at < 0:
        return head, None, rest
    return head, rest[:at], rest[at + 1 :]


def text(value: object) -> str:
    """A Redis reply as text, from a client that answers bytes or one that decodes (str)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def redact_url(url: str, *, keep_user: bool = True) -> str:
    """Return `url` with every password replaced by `***`, fit for logs and error messages.

    The URL is taken apart, not pattern-matched for a well-formed password: whatever stands
    before the last `@` of each URL is credentials, and only a plain user name is kept (none
    with `keep_user=False`, as in errors about the URL itself).
    """
    shown: list[str] = []
    for part in _NEXT_URL.split(url):
        head, userinfo, rest = _authority_split(part)
        if userinfo is not None:
            user, colon, _ = userinfo.partition(":")
            keep = user if keep_user and colon and _SAFE_USER.fullmatch(user) else ""
            rest = f"{keep}:***@{rest}" if keep else f"***@{rest}"
        shown.append(head + rest)
    return _SECRET_OPTION.sub(r"\1***", ";".join(shown))


def _check_userinfo(url: str) -> None:
    """Refuse credentials that redis-py and kombu would read differently (names no part of them)."""
    for part in _NEXT_URL.split(url):
        _, userinfo, _ = _authority_split(part)
        if userinfo is not None and not _USERINFO.fullmatch(userinfo):
            raise _bad(url, f"the user name or password holds a URL delimiter: {_ENCODE_HINT}")


@dataclass(frozen=True, slots=True)
class SentinelConfig:
    """A `sentinel://` URL taken apart: where the sentinels are and which master to ask for."""

    hosts: list[tuple[str, int]]
    db: int
    master_name: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)
    # user:password@ exactly as written in the URL (still percent-encoded), for the broker URL
    userinfo: str = field(default="", repr=False)
    # redis-py's TLS options (ssl_cert_reqs, ssl_ca_certs, ...) for the master and the
    # sentinels; None where that hop is plain TCP
    master_tls: dict[str, Any] | None = None
    sentinel_tls: dict[str, Any] | None = None

    def sentinel_kwargs(self, retry: Any = None, **timeouts: float | None) -> dict[str, Any]:
        """Connection options for the sentinels themselves (not the master).

        No retries: asking the next sentinel is the retry. redis-py's default (10 retries with
        backoff) would make every new connection wait ~4 s per sentinel that is down. `retry`
        replaces the synchronous no-retry policy (asyncio clients need their own type).
        """
        kwargs: dict[str, Any] = {"retry": retry if retry is not None else Retry(NoBackoff(), 0)}
        kwargs.update({k: v for k, v in timeouts.items() if v is not None})
        if self.sentinel_password:
            kwargs["password"] = self.sentinel_password
        if self.sentinel_tls is not None:
            kwargs.update(ssl=True, **self.sentinel_tls)
        return kwargs

    def master_kwargs(self) -> dict[str, Any]:
        """Options for `Sentinel.master_for()`: database, credentials and TLS of the master."""
        kwargs: dict[str, Any] = {"db": self.db, "username": self.username}
        kwargs["password"] = self.password
        if self.master_tls is not None:
            kwargs.update(ssl=True, **self.master_tls)
        return kwargs


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """The Celery settings that point the broker at the same server and database as the ledger."""

    url: str
    transport_options: dict[str, Any]
    use_ssl: dict[str, Any] | None = None


def _bad(url: str, problem: str) -> ConfigError:
    # No part of the credentials, the user name included: the URL may be cut in the wrong place.
    return ConfigError(f"EVENTFWD_REDIS_URL {redact_url(url, keep_user=False)!r}: {problem}")


def _query(url: str, scheme: str, query: str) -> dict[str, str]:
    allowed = _QUERY_OPTIONS[scheme]
    out: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in allowed:
            if key.startswith("ssl_") and scheme != "rediss":
                raise _bad(url, f"{key} needs a rediss:// URL")
            raise _bad(
                url,
                f"{scheme}:// URLs take no {key!r} option (supported: {', '.join(allowed)})",
            )
        if key in out and out[key] != value:
            raise _bad(url, f"{key} is given twice")
        out[key] = value
    return out


def _db(url: str, raw: str) -> int:
    raw = raw.strip("/")
    if raw == "":
        return 0
    if not raw.isdigit():
        raise _bad(url, f"the database must be a number, not {raw!r}")
    return int(raw)


def _port(url: str, part: Any, default: int) -> int:
    try:
        port = part.port
    except ValueError:
        raise _bad(url, "the port is not a number from 0 to 65535") from None
    return int(port) if port else default


def _ssl_options(url: str, query: dict[str, str]) -> dict[str, Any]:
    """The TLS options of a `rediss://` URL, normalised; certificates are verified by default."""
    raw = query.get("ssl_cert_reqs", "required")
    try:
        options: dict[str, Any] = {"ssl_cert_reqs": _CERT_REQS[raw.lower()]}
    except KeyError:
        raise _bad(url, f"ssl_cert_reqs={raw!r} is not one of required, optional, none") from None
    if "ssl_check_hostname" in query:
        options["ssl_check_hostname"] = _flag(url, query, "ssl_check_hostname", True)
    for key in _SSL_PATHS:
        if key in query:
            if not query[key]:
                raise _bad(url, f"{key} is empty")
            options[key] = query[key]
    return options


def _userinfo(netloc: str) -> str:
    return netloc.rpartition("@")[0] if "@" in netloc else ""


def sentinel_config(url: str) -> SentinelConfig:
    """Take a `sentinel://h1:26379;sentinel://h2:26379/db?master_name=m` URL apart.

    The database, credentials and options may be written on any one part (or repeated
    identically); the sentinels are every part's host and port.
    """
    _check_userinfo(url)
    hosts: list[tuple[str, int]] = []
    db: int | None = None
    userinfo = ""
    query: dict[str, str] = {}
    for number, raw in enumerate(url.split(";"), start=1):
        part = urlsplit(raw.strip())
        if part.scheme != "sentinel" or not part.hostname:
            # Not echoed: a stray piece may be the tail of a password cut at a raw `;`.
            raise _bad(
                url,
                f"part {number} (of those the `;` separates) is not sentinel://host:port; "
                "percent-encode a ; inside a password as %3B",
            )
        hosts.append((part.hostname, _port(url, part, DEFAULT_SENTINEL_PORT)))
        if part.path.strip("/"):
            part_db = _db(url, part.path)
            if db is not None and db != part_db:
                raise _bad(url, "the parts name different databases")
            db = part_db
        info = _userinfo(part.netloc)
        if info:
            if userinfo and userinfo != info:
                raise _bad(url, "the parts carry different credentials")
            userinfo = info
        for key, value in _query(url, "sentinel", part.query).items():
            if query.get(key, value) != value:
                raise _bad(url, f"the parts give different values for {key}")
            query[key] = value
    user, _, password = userinfo.partition(":")
    master_tls, sentinel_tls = _sentinel_tls(url, query)
    return SentinelConfig(
        hosts=hosts,
        db=db or 0,
        master_name=query.get("master_name") or DEFAULT_SENTINEL_MASTER,
        username=unquote(user) or None,
        password=unquote(password) or None,
        sentinel_password=query.get("sentinel_password") or None,
        userinfo=userinfo,
        master_tls=master_tls,
        sentinel_tls=sentinel_tls,
    )


def _flag(url: str, query: dict[str, str], key: str, default: bool) -> bool:
    raw = query.get(key)
    if raw is None:
        return default
    if raw.lower() not in _TRUE | _FALSE:
        raise _bad(url, f"{key}={raw!r} is not true or false")
    return raw.lower() in _TRUE


def _sentinel_tls(
    url: str, query: dict[str, str]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """TLS options for (the master, the sentinels) of a `sentinel://` URL; None = plain TCP.

    `ssl` is the master's; the sentinels follow it unless `sentinel_ssl` says otherwise (a
    deployment usually turns TLS on for every Redis process or for none).
    """
    master = _flag(url, query, "ssl", False)
    sentinels = _flag(url, query, "sentinel_ssl", master)
    if not (master or sentinels):
        given = [key for key in _SSL_OPTIONS if key in query]
        if given:
            raise _bad(url, f"{given[0]} needs ssl=true (or sentinel_ssl=true)")
        return None, None
    options = _ssl_options(url, query)
    return (options if master else None), (dict(options) if sentinels else None)


def sentinel_parts(url: str) -> tuple[list[tuple[str, int]], int, str, str | None]:
    """Split a `sentinel://` URL into (sentinel hosts, db, master name, password)."""
    cfg = sentinel_config(url)
    return cfg.hosts, cfg.db, cfg.master_name, cfg.password


def redis_py_url(url: str) -> str:
    """A `redis://`, `rediss://` or `unix://` URL checked and spelled the way redis-py reads it.

    Use it for `redis.Redis.from_url` or `redis.asyncio` pools; `sentinel://` URLs go through
    `sentinel_config()` instead.
    """
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise _bad(url, "is not a redis://, rediss://, unix:// or sentinel:// URL")
    _check_userinfo(url)
    query = _query(url, scheme, parts.query)
    out: dict[str, str] = {}
    if scheme == "unix":
        if parts.hostname or not parts.path.strip("/"):
            raise _bad(url, "write a socket path as unix:///path/to/redis.sock")
        path = parts.path
    else:
        if not parts.hostname:
            raise _bad(url, "has no host")
        _port(url, parts, DEFAULT_REDIS_PORT)
        path = f"/{_db(url, parts.path)}"
    if "db" in query:
        out["db"] = str(_db(url, query["db"]))
    if scheme == "rediss":
        options = _ssl_options(url, query)
        for key, value in options.items():
            if key == "ssl_cert_reqs":
                value = _CERT_REQS_NAME[value]
            elif key == "ssl_check_hostname":
                value = "true" if value else "false"
            out[key] = value
    suffix = f"?{urlencode(out)}" if out else ""
    return f"{scheme}://{parts.netloc}{path}{suffix}"


def connect(url: str, **options: Any) -> redis.Redis:
    """Return a Redis client for `url`; `options` go to the connection (timeouts, retries)."""
    if url.startswith("sentinel://"):
        return _sentinel_master(sentinel_config(url), options)
    try:
        return redis.Redis.from_url(redis_py_url(url), **options)
    except ValueError as exc:
        raise _bad(url, f"is not a Redis URL: {exc}") from None


def _sentinel_master(cfg: SentinelConfig, options: dict[str, Any]) -> redis.Redis:
    sentinel_kwargs = cfg.sentinel_kwargs(
        socket_timeout=options.get("socket_timeout"),
        socket_connect_timeout=options.get("socket_connect_timeout"),
    )
    sentinel = Sentinel(cfg.hosts, sentinel_kwargs=sentinel_kwargs)
    return sentinel.master_for(cfg.master_name, **cfg.master_kwargs(), **options)


def broker_settings(url: str) -> BrokerSettings:
    """Celery's `broker_url`, `broker_transport_options` and `broker_use_ssl` for `url`.

    kombu rejects query options it does not know, reads a database only from the first sentinel
    part, reads TLS options either from the query (as constants) or from `broker_use_ssl`, and
    falls back to *unverified* TLS when a `rediss://` URL has none; it reaches a unix socket as
    `redis+socket://`. So the query is always taken off and said again the way kombu wants it.
    A TLS master behind sentinels is `broker_use_ssl` too (kombu then picks its
    Sentinel-managed TLS connection); TLS to the sentinels is in their `sentinel_kwargs`.
    """
    if url.startswith("sentinel://"):
        cfg = sentinel_config(url)
        at = f"{cfg.userinfo}@" if cfg.userinfo else ""
        broker_url = ";".join(
            f"sentinel://{at}{url_host(host)}:{port}/{cfg.db}" for host, port in cfg.hosts
        )
        transport = {
            "master_name": cfg.master_name,
            "sentinel_kwargs": cfg.sentinel_kwargs(
                socket_timeout=BROKER_SENTINEL_TIMEOUT_S,
                socket_connect_timeout=BROKER_SENTINEL_TIMEOUT_S,
            ),
        }
        return BrokerSettings(broker_url, transport, cfg.master_tls)
    parts = urlsplit(redis_py_url(url))
    query = dict(parse_qsl(parts.query))
    if parts.scheme == "unix":
        db = query.get("db", "0")
        return BrokerSettings(f"redis+socket://{parts.netloc}{parts.path}?virtual_host={db}", {})
    db = query.get("db") or parts.path.strip("/") or "0"
    broker_url = f"{parts.scheme}://{parts.netloc}/{db}"
    use_ssl = _ssl_options(url, query) if parts.scheme == "rediss" else None
    return BrokerSettings(broker_url, {}, use_ssl)


def url_host(host: str) -> str:
    """`host` as a URL writes it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def check_url(url: str) -> BrokerSettings:
    """Check `url` for both readers at start: our parse, then kombu's, which must agree.

    Builds the broker connection object once (no network) so that a URL the worker could not
    use is refused wherever settings are read and kombu is installed. A web app's producer-only
    install has no kombu: our own parse (which refuses the delimiters kombu would misread) is
    the check there, and the worker checks the rest when it starts.
    """
    broker = broker_settings(url)
    try:
        from kombu import Connection  # the broker's parser; imported only when settings are read
    except ImportError:
        return broker

    try:
        conn = Connection(
            broker.url, transport_options=broker.transport_options, ssl=broker.use_ssl or False
        )
        seen = conn.password
    except Exception as exc:  # kombu's own messages may quote the URL
        raise _bad(url, f"the Celery broker cannot read it ({type(exc).__name__})") from None
    if url.startswith("sentinel://"):
        expected = sentinel_config(url).password
    elif url.startswith("unix://"):
        return broker  # kombu keeps a socket URL whole; redis_py_url checked it
    else:
        expected = unquote(urlsplit(url).password or "") or None
    if seen != expected:
        raise _bad(url, f"the Celery broker would read another password: {_ENCODE_HINT}")
    return broker
