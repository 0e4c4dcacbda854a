"""A real browser for the console's tests: Debian's headless ``chromium`` driven by its
``chromium-driver`` through Selenium (pinned in the dev lock). Nothing is downloaded:
the browser is the machine's (``apt-get install -y chromium chromium-driver``; .ci/run
installs them). Without them the tests are skipped, except under ``CI=true``, where a
missing browser is a failure.
"""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from tests.platform import REPO

ARTIFACTS = REPO / "artifacts" / "console"
T = TypeVar("T")

# Counts the pixels of a canvas that are drawn (not transparent and not the white
# background): a chart that rendered nothing has none.
_DRAWN_PIXELS = """
const canvas = arguments[0];
const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
let drawn = 0;
for (let i = 0; i < data.length; i += 4) {
  const white = data[i] > 250 && data[i + 1] > 250 && data[i + 2] > 250;
  if (data[i + 3] > 0 && !white) drawn += 1;
}
return drawn;
"""


_UNLABELLED = """
const missing = [];
for (const el of document.querySelectorAll("input, select, textarea, button")) {
  if (el.type === "hidden" || el.closest("[hidden]")) continue;
  const named = (el.labels && el.labels.length) || el.getAttribute("aria-label")
    || el.getAttribute("aria-labelledby") || el.getAttribute("title")
    || (el.tagName === "BUTTON" && el.textContent.trim());
  if (!named) missing.push(el.outerHTML.slice(0, 80));
}
return missing;
"""


def browser_binaries() -> tuple[str, str] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


@contextmanager
def chromium(width: int = 1280, height: int = 1000) -> Iterator[webdriver.Chrome]:
    binaries = browser_binaries()
    if binaries is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium and chromium-driver are not installed (see docs/console.md)")
        pytest.skip("chromium and chromium-driver are not installed (see docs/console.md)")
    options = webdriver.ChromeOptions()
    options.binary_location = binaries[0]
    for argument in (
        "--headless=new",
        "--no-sandbox",  # as root (CI) Chromium refuses to start sandboxed
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(binaries[1]))
    try:
        yield driver
    finally:
        driver.quit()


class Console:
    """The console in one browser tab, with the steps the tests take."""

    def __init__(self, driver: webdriver.Chrome, base_url: str, shots: Path) -> None:
        self.driver = driver
        self.base_url = base_url
        self.shots = shots
        self.logs: list[dict[str, Any]] = []

    def wait(self, condition: Callable[[], T | None], timeout: float = 20.0, what: str = "") -> T:
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = condition()
            except StaleElementReferenceException:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                self.screenshot("failed-" + (what or "wait").replace(" ", "-"))
                raise TimeoutException(f"waited {timeout}s for {what or condition}")
            time.sleep(0.1)

    def find(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def one(self, css: str, timeout: float = 20.0) -> WebElement:
        return self.wait(lambda: next(iter(self.find(css)), None), timeout, css)

    def text(self, css: str) -> str:
        return " ".join(e.text for e in self.find(css))

    def open(self, route: str = "") -> None:
        """Go to ``#/route`` without reloading the page (a reload ends the session)."""
        if not self.driver.current_url.startswith(self.base_url + "/"):
            self.driver.get(self.base_url + "/")
        self.driver.execute_script("window.location.hash = arguments[0]", "#/" + route)

    def settled(self, timeout: float = 20.0) -> None:
        """Every loading state on the page is gone."""
        self.wait(lambda: not self.find("[aria-busy='true'], main .loading"), timeout, "loading")

    def errors(self) -> list[str]:
        return [e.text for e in self.find("main .error")]

    def sign_in(self, username: str, password: str) -> None:
        self.driver.get(self.base_url + "/")
        self.one("input[name=username]").send_keys(username)
        self.one("input[name=password]").send_keys(password)
        self.one("form.login button[type=submit]").click()
        self.wait(lambda: self.one("#who").text.startswith(username), what="signed in")

    def sign_out(self) -> None:
        self.one("#logout").click()
        self.one("input[name=username]")

    def drawn_pixels(self, canvas: WebElement) -> int:
        return int(self.driver.execute_script(_DRAWN_PIXELS, canvas))

    def unlabelled(self) -> list[str]:
        """Form controls and buttons without an accessible name (a label, aria-label, or
        text): what a screen reader would announce as just "edit" or "button"."""
        return list(self.driver.execute_script(_UNLABELLED))

    def screenshot(self, name: str) -> Path:
        """Saved under :data:`ARTIFACTS`; the page is checked for unlabelled controls
        first (every page of the tests is screenshotted, so every page is checked)."""
        assert self.unlabelled() == [], f"{name}: unlabelled {self.unlabelled()}"
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{name}.png"
        # The whole page, not only the window (Chrome DevTools' capture beyond the viewport).
        width, height = self.driver.execute_script(
            "const d = document.documentElement; return [d.scrollWidth, d.scrollHeight]"
        )
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
            },
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def browser_log(self) -> list[dict[str, Any]]:
        """Everything the page logged so far (kept: the driver hands each entry once)."""
        self.logs.extend(self.driver.get_log("browser"))  # type: ignore[no-untyped-call]
        return self.logs

    def csp_violations(self) -> list[str]:
        return [
            str(entry["message"])
            for entry in self.browser_log()
            if "Content Security Policy" in str(entry["message"])
        ]
