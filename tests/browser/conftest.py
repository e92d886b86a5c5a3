"""A headless Chromium (Debian's `chromium` and `chromium-driver`) driving the console.

The console runs in this process on a free loopback port against the suite's redis-server.
Set EVENTFWD_SCREENSHOT_DIR (e.g. docs/screenshots) to keep the screenshots the tests take.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from eventfwd.core.settings import Settings
from eventfwd.web.app import Console, create_app
from eventfwd.web.server import make_console_server

pytestmark = pytest.mark.browser

CHROMEDRIVER = os.environ.get("EVENTFWD_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM = os.environ.get("EVENTFWD_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser() -> Iterator[webdriver.Chrome]:
    if not (Path(CHROMEDRIVER).exists() and Path(CHROMIUM).exists()):
        pytest.fail(
            f"no {CHROMIUM} or {CHROMEDRIVER}: apt-get install chromium chromium-driver "
            "(scripts/bootstrap does it)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,1000")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


class Served:
    """The console of one test, served on loopback."""

    def __init__(self, app: Console, url: str, stop: Callable[[], None]) -> None:
        self.app = app
        self.url = url
        self.stop = stop


@pytest.fixture
def console(settings: Settings, browser: webdriver.Chrome) -> Iterator[Callable[..., Served]]:
    servers: list[Any] = []

    def start(settings_: Settings | None = None) -> Served:
        app = create_app(settings_ or settings)
        server = make_console_server(app, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return Served(app, f"http://127.0.0.1:{server.server_port}", server.shutdown)

    yield start
    browser.delete_all_cookies()
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def shot(browser: webdriver.Chrome, tmp_path: Path) -> Callable[[str], Path]:
    """Save a screenshot of the page (full height) as NAME.png."""
    keep = os.environ.get("EVENTFWD_SCREENSHOT_DIR")

    def take(name: str) -> Path:
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1400, max(700, min(int(height) + 40, 2400)))
        path = tmp_path / f"{name}.png"
        browser.find_element(By.TAG_NAME, "body").screenshot(str(path))
        browser.set_window_size(1400, 1000)
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(keep) / path.name)
        return path

    return take
