"""The console in a real headless Chromium, against a real redis-server with real dead letters."""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By

from eventfwd.core.settings import Settings
from producers import EventProducer
from tests.conftest import example_events
from tests.support.dead import dead_record, import_dead
from tests.support.stack import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.browser]

MINUTE_MS = 60_000


def text_of(browser: webdriver.Chrome, element_id: str) -> str:
    """The element's text, or "" while the page is (re)loading (the job page refreshes itself)."""
    try:
        return str(browser.find_element(By.ID, element_id).text)
    except WebDriverException:
        return ""


def rows(browser: webdriver.Chrome) -> list[str]:
    return [
        r.get_attribute("data-id") or ""
        for r in browser.find_elements(By.CSS_SELECTOR, "#dead tbody tr[data-id]")
    ]


def mixed_dead(settings: Settings) -> dict[str, list[str]]:
    """Dead letters of two platforms whose Moloco messages differ; oldest first per group."""
    now = int(time.time() * 1000)
    page_id = [
        dead_record("acme", "rejected", 400, now - i * MINUTE_MS, message="missing page_id")
        for i in (30, 20, 10)
    ]
    other = [
        dead_record("acme", "rejected", 422, now - 25 * MINUTE_MS, message="bad currency"),
        dead_record("other", "retries_exhausted", 503, now - 5 * MINUTE_MS, message="upstream"),
        dead_record("other", "rejected", 400, now - 3 * MINUTE_MS, message="Missing PAGE_ID!"),
    ]
    return {
        "page_id": [*import_dead(settings, *page_id), other[2]["id"]],
        "other": import_dead(settings, *other)[:2],
    }


def test_overview_shows_the_counts_and_a_chart_of_deliveries(
    browser: webdriver.Chrome, console: Any, make_stack: Any, sink: Any, shot: Callable[..., Path]
) -> None:
    stack = make_stack()
    settings = stack.settings()
    dead = mixed_dead(settings)
    stack.worker()
    ids = EventProducer(settings=settings).enqueue_many("acme", example_events())
    wait_for(lambda: len(sink.events()) == len(ids), 30, what="every event at the sink")
    served = console(settings)
    browser.get(served.url + "/")
    assert browser.find_element(By.ID, "dead-total").text == str(sum(map(len, dead.values())))
    acme = browser.find_element(By.CSS_SELECTOR, '#platforms tr[data-platform="acme"]')
    # last hour: delivered / failed / dead (imported dead letters are not counted as dying now)
    assert acme.find_element(By.CSS_SELECTOR, ".hour").text.startswith(f"{len(ids)} / 0 / ")
    assert acme.find_element(By.CSS_SELECTOR, ".backlog").text == "0 (0 ready, 0 scheduled)"
    delivered = browser.find_elements(
        By.CSS_SELECTOR, 'svg.chart polyline[data-series="delivered"]'
    )
    assert delivered, "no delivered series drawn"
    assert delivered[0].get_attribute("data-total") == str(len(ids))  # the all-platforms chart
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart")) == 1 + 2  # total + 2 platforms
    assert sink.stats()["requests"] == len(ids)
    shot("overview")


def test_filtering_by_message_finds_exactly_the_matching_dead_letters(
    browser: webdriver.Chrome, console: Any, settings: Settings, shot: Callable[..., Path]
) -> None:
    dead = mixed_dead(settings)
    served = console()
    browser.get(served.url + "/dead")
    assert len(rows(browser)) == 6
    box = browser.find_element(By.NAME, "message")
    box.send_keys("page_id")
    box.submit()
    wait_for(lambda: "message=page_id" in browser.current_url, 10, what="the filtered page")
    # any case, newest first
    assert rows(browser) == list(reversed(dead["page_id"]))
    shot("dead-letters-filtered")
    browser.get(served.url + "/dead?" + urllib.parse.urlencode({"grep": "nothing-has-this"}))
    assert rows(browser) == []
    browser.get(served.url + "/dead/stats?message=page_id")
    assert browser.find_element(By.ID, "stats-total").text == "4"
    shot("dead-letter-counts")


def test_one_events_page_shows_its_attempt_history(
    browser: webdriver.Chrome, console: Any, settings: Settings, shot: Callable[..., Path]
) -> None:
    now = int(time.time() * 1000)
    history = [
        {
            "at_ms": now - 90_000,
            "status": 503,
            "outcome": "transient",
            "duration_ms": 41,
            "message": "upstream unavailable",
        },
        {"at_ms": now - 60_000, "status": None, "outcome": "timeout", "duration_ms": 10_000},
        {
            "at_ms": now - 30_000,
            "status": 400,
            "outcome": "permanent",
            "duration_ms": 12,
            "message": "missing page_id",
        },
    ]
    (event_id,) = import_dead(
        settings,
        dead_record(
            "acme", "rejected", 400, now, message="missing page_id", history=history, attempts=3
        ),
    )
    served = console()
    browser.get(served.url + "/")
    search = browser.find_element(By.NAME, "id")
    search.send_keys(event_id)
    search.submit()
    wait_for(lambda: "/event" in browser.current_url, 10, what="the event page")
    assert browser.find_element(By.ID, "state").text == "dead"
    items = browser.find_elements(By.CSS_SELECTOR, "#history li")
    assert [i.find_element(By.CLASS_NAME, "outcome").text for i in items] == [
        "transient",
        "timeout",
        "permanent",
    ]
    assert "upstream unavailable" in items[0].text and "10000 ms" in items[1].text
    assert "waits for an operator" in browser.find_element(By.ID, "next-attempt").text
    assert f'"id": "{event_id}"' in browser.find_element(By.ID, "body").text
    assert "test-key" not in browser.page_source and "api_key" not in browser.page_source
    shot("event")


def test_replay_from_the_event_page_makes_the_sink_receive_it(
    browser: webdriver.Chrome, console: Any, make_stack: Any, sink: Any, rclient: redis.Redis
) -> None:
    stack = make_stack()
    settings = stack.settings()
    (event_id,) = import_dead(settings, dead_record("acme", "rejected", 400))
    stack.worker()
    stack.beat()
    served = console(settings)
    browser.get(served.url + "/event?" + urllib.parse.urlencode({"id": event_id}))
    browser.find_element(By.ID, "replay").click()
    wait_for(lambda: browser.find_elements(By.ID, "note"), 10, what="the replay note")
    assert "Replayed 1 event" in browser.find_element(By.ID, "note").text
    wait_for(lambda: [e["event"]["id"] for e in sink.events()] == [event_id], 30, what="at sink")
    assert sink.stats()["requests"] == 1
    wait_for(lambda: not rclient.exists(f"eventfwd:ev:{event_id}"), 10, what="acked")
    browser.refresh()
    assert browser.find_element(By.ID, "state").text == "delivered"


def test_purge_asks_for_confirmation_then_deletes_exactly_the_filtered_set(
    browser: webdriver.Chrome,
    console: Any,
    settings: Settings,
    rclient: redis.Redis,
    shot: Callable[..., Path],
) -> None:
    dead = mixed_dead(settings)
    served = console()
    browser.get(served.url + "/dead?" + urllib.parse.urlencode({"message": "PAGE_ID"}))
    browser.find_element(By.ID, "bulk-purge").click()
    wait_for(lambda: text_of(browser, "confirm-count") == "4", 10, what="the confirmation")
    sample = {
        r.find_element(By.TAG_NAME, "td").text
        for r in browser.find_elements(By.CSS_SELECTOR, "#sample tbody tr")
    }
    assert sample == set(dead["page_id"])
    assert rclient.zcard("eventfwd:dead") == 6, "nothing may go before the confirmation"
    shot("purge-confirm")
    browser.find_element(By.ID, "confirm").click()
    wait_for(lambda: text_of(browser, "job-state") == "done", 20, what="the purge done")
    wait_for(lambda: text_of(browser, "job-done") == "4", 5, what="4 purged")
    assert sorted(rclient.zrange("eventfwd:dead", 0, -1)) == sorted(dead["other"])
    assert not any(rclient.exists(f"eventfwd:ev:{i}") for i in dead["page_id"])


def test_pause_parks_new_events_and_resume_drains_them(
    browser: webdriver.Chrome,
    console: Any,
    make_stack: Any,
    sink: Any,
    rclient: redis.Redis,
    shot: Callable[..., Path],
) -> None:
    stack = make_stack()
    settings = stack.settings()
    producer = EventProducer(settings=settings)
    producer.enqueue("acme", example_events()[0] | {"id": None})  # the platform is known
    stack.worker()
    stack.beat()
    wait_for(lambda: len(sink.events()) == 1, 30, what="the first event")
    served = console(settings)
    browser.get(served.url + "/")
    browser.find_element(
        By.CSS_SELECTOR, '#platforms tr[data-platform="acme"] button[name="pause"]'
    ).click()
    wait_for(lambda: browser.find_elements(By.ID, "note"), 10, what="the pause note")
    assert rclient.exists("eventfwd:pause:acme")
    ids = producer.enqueue_many("acme", [e | {"id": None} for e in example_events()])
    # five pump runs and the engine's bell: plenty of chances to send, were it not paused
    ticks = int(rclient.hget("eventfwd:beat", "ticks") or 0)
    wait_for(
        lambda: int(rclient.hget("eventfwd:beat", "ticks") or 0) >= ticks + 5, 10, what="pumps"
    )
    assert len(sink.events()) == 1
    assert rclient.zcard("eventfwd:ready:acme") == len(ids)  # kept, ready for the resume
    browser.get(served.url + "/")
    assert (
        "paused"
        in browser.find_element(By.CSS_SELECTOR, '#platforms tr[data-platform="acme"]').text
    )
    shot("paused")
    browser.find_element(
        By.CSS_SELECTOR, '#platforms tr[data-platform="acme"] button[name="resume"]'
    ).click()
    wait_for(lambda: len(sink.events()) == 1 + len(ids), 30, what="the parked events")
    assert not rclient.exists("eventfwd:pause:acme")


def _request(
    url: str, data: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> int:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_request_without_the_csrf_token_or_the_secret_is_refused(
    browser: webdriver.Chrome,
    console: Any,
    settings: Settings,
    rclient: redis.Redis,
    shot: Callable[..., Path],
) -> None:
    (event_id,) = import_dead(settings, dead_record("acme", "rejected", 400))
    secret = "s3cret-for-the-console-tests"
    served = console(settings.replace(web_secret=secret))
    # no secret: refused, whatever the path
    assert _request(served.url + "/") == 401
    assert _request(served.url + "/dead") == 401
    assert _request(served.url + "/", headers={"X-Eventfwd-Secret": "wrong-secret-xxxxxxx"}) == 401
    assert _request(served.url + "/", headers={"Authorization": f"Bearer {secret}"}) == 200
    # the secret but no CSRF token: refused, and nothing replayed
    auth = {"Authorization": f"Bearer {secret}"}
    assert _request(served.url + "/event/replay", {"id": event_id}, auth) == 403
    forged = {**auth, "Cookie": "eventfwd_csrf=" + "x" * 40}
    assert _request(served.url + "/event/replay", {"id": event_id, "csrf": "y" * 40}, forged) == 403
    assert rclient.zscore("eventfwd:dead", event_id) is not None
    # a person: the login form, then the pages
    browser.get(served.url + "/dead")
    assert browser.find_elements(By.NAME, "secret")
    shot("login")
    browser.find_element(By.NAME, "secret").send_keys(secret)
    browser.find_element(By.NAME, "name").send_keys("alice")
    browser.find_element(By.NAME, "secret").submit()
    wait_for(lambda: browser.find_elements(By.ID, "platforms"), 10, what="the overview")
    assert "alice" in browser.find_element(By.CLASS_NAME, "who").text
    assert secret not in browser.page_source
