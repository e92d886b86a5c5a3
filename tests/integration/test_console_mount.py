"""The console as a WSGI app mounted inside another one, and its read-only mode."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client

from eventfwd.core.settings import Settings
from eventfwd.web import create_app
from tests.support.dead import dead_record, import_dead

pytestmark = pytest.mark.integration


def test_mounted_under_a_prefix_every_link_keeps_the_prefix(settings: Settings) -> None:
    import_dead(settings, dead_record("acme", "rejected", 400))
    host = Flask("host")
    host.wsgi_app = DispatcherMiddleware(host.wsgi_app, {"/ops/eventfwd": create_app(settings)})  # type: ignore[method-assign]
    client = Client(host)
    page = client.get("/ops/eventfwd/dead")
    assert page.status_code == 200
    links = re.findall(r'(?:href|action)="([^"]+)"', page.text)
    assert links and all(link.startswith("/ops/eventfwd/") for link in links), links
    assert client.get("/ops/eventfwd/static/console.css").status_code == 200


def test_read_only_shows_no_action_and_refuses_every_change(settings: Settings) -> None:
    (event_id,) = import_dead(settings, dead_record("acme", "rejected", 400))
    client = Client(create_app(settings.replace(web_read_only=True)))
    page = client.get("/event", query_string={"id": event_id})
    assert page.status_code == 200 and 'id="replay"' not in page.text
    token = client.get_cookie("eventfwd_csrf")
    assert token is not None  # a valid token: only the read-only mode refuses
    refused = client.post("/event/replay", data={"id": event_id, "csrf": token.value})
    assert refused.status_code == 403 and "read-only" in refused.text
