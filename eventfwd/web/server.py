"""Serve the console: stdlib wsgiref, a thread per request, loopback unless a secret guards it."""

from __future__ import annotations

import ipaddress
import logging
import socket
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from eventfwd.core.errors import ConfigError
from eventfwd.core.settings import Settings

log = logging.getLogger(__name__)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings, host: str) -> None:
    """Refuse an address other than loopback unless EVENTFWD_WEB_SECRET is set."""
    if not is_loopback(host) and not settings.web_secret:
        raise ConfigError(
            f"refusing to serve the console on {host}: set EVENTFWD_WEB_SECRET (16+ characters) "
            "so that every request must carry it, or bind 127.0.0.1"
        )


def make_console_server(app: Any, host: str, port: int) -> WSGIServer:
    """A threaded WSGI server bound to (host, port); port 0 picks a free one."""
    server_class: type[WSGIServer] = _ThreadingServer
    if ":" in host:
        server_class = type("_V6", (_ThreadingServer,), {"address_family": socket.AF_INET6})
    return make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
