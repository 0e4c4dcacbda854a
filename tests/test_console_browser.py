"""The console in a real browser (headless Debian Chromium, tests/browser.py) against the
platform's five processes: what a user does, page by page, and what they must see.
Screenshots of every page go to ``artifacts/console/`` (gitignored; the path is printed).
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from bourse.parts import PORTFOLIO
from gateway.demo import DEMO_ACCOUNTS
from services.portfolio import demo as portfolio_demo
from shared.db import open_connection
from tests.browser import ARTIFACTS, Console, chromium
from tests.conftest import login
from tests.infra import TestInfra
from tests.platform import Platform, wait_ready

pytestmark = pytest.mark.e2e

ACCOUNTS = {role: (username, password) for role, username, password in DEMO_ACCOUNTS}
PAGES = ("market", "stocks", "live", "alerts", "recommendations", "track-record", "portfolio")


@pytest.fixture(scope="module")
def shots(request: pytest.FixtureRequest) -> Iterator[None]:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and ARTIFACTS.exists():
        count = len(list(ARTIFACTS.glob("*.png")))
        reporter.write_line(f"console screenshots ({count}): {ARTIFACTS}")


@pytest.fixture(scope="module")
def console(platform: Platform, shots: None) -> Iterator[Console]:
    with chromium() as driver:
        yield Console(driver, platform.gateway_url, ARTIFACTS)


def _token(client: httpx.Client, username: str, password: str) -> dict[str, str]:
    answer = client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.fixture(scope="module")
def api(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.gateway_url, timeout=10.0) as client:
        yield client


@pytest.fixture(scope="module")
def newcomer(api: httpx.Client) -> tuple[str, str]:
    """A viewer of this module's own (the demo users' portfolios belong to other tests)."""
    admin = _token(api, *ACCOUNTS["admin"])
    username, password = f"console-{uuid.uuid4().hex[:8]}", "console-pass-1234"
    created = api.post(
        "/api/v1/users",
        json={"username": username, "password": password, "role": "viewer"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    return username, password


@pytest.fixture(scope="module")
async def historian(seeded: TestInfra, platform: Platform) -> tuple[str, str]:
    """A viewer whose default portfolio has the demo's years of history, seeded as
    ``bourse up`` seeds the demo users'."""
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=10.0) as client:
        admin = await login(client, *ACCOUNTS["admin"])
        username, password = f"history-{uuid.uuid4().hex[:8]}", "history-pass-1234"
        created = await client.post(
            "/api/v1/users",
            json={"username": username, "password": password, "role": "viewer"},
            headers=admin,
        )
        assert created.status_code == 201, created.text
    conn = await open_connection(seeded.dsn_for(PORTFOLIO))
    try:
        await portfolio_demo.seed_demo(
            conn,
            owners=[created.json()["id"]],
            nats_url=seeded.nats_url,
            nats_prefix=seeded.nats_prefix,
        )
    finally:
        await conn.close()
    return username, password


def _latest_calls(api: httpx.Client) -> list[dict[str, object]]:
    """The latest run's calls, once the service has made its first run by itself."""
    headers = _token(api, *ACCOUNTS["viewer"])
    for _ in range(240):
        answer = api.get("/api/v1/recommendations", params={"limit": 5}, headers=headers)
        assert answer.status_code == 200, answer.text
        items: list[dict[str, object]] = answer.json()["items"]
        if items:
            return items
        time.sleep(0.5)
    raise AssertionError("no recommendation run completed")


def _model_view(api: httpx.Client, ticker: str) -> dict[str, str]:
    """The stock's call as market's analysis serves it, once market has the run."""
    headers = _token(api, *ACCOUNTS["viewer"])
    for _ in range(240):
        answer = api.get(
            f"/api/v1/stocks/{ticker}/analysis", params={"include_ml": "true"}, headers=headers
        )
        assert answer.status_code == 200, answer.text
        if answer.json()["ml"] is not None:
            ml: dict[str, str] = answer.json()["ml"]
            return ml
        time.sleep(0.5)
    raise AssertionError("market never received the run")


def _number(text: str) -> Decimal:
    return Decimal(re.sub(r"[^0-9.\-]", "", text))


def test_a_user_tours_the_console(
    console: Console, api: httpx.Client, newcomer: tuple[str, str]
) -> None:
    calls = _latest_calls(api)
    console.driver.get(console.base_url + "/")
    console.one("input[name=username]")
    console.screenshot("sign-in")
    console.sign_in(*newcomer)
    assert not console.find("li[data-role=admin] a")[0].is_displayed()

    # Market: the index, breadth, movers and the sector map.
    console.open("market")
    console.settled()
    assert len(console.find(".sector-map .tile")) >= 5
    assert console.drawn_pixels(console.one("main canvas")) > 1000
    assert "Top gainers" in console.text("main") and "Most active" in console.text("main")
    console.screenshot("market")

    # Stocks: a page, then the next one by its cursor, then a filter from the form.
    console.open("stocks")
    console.settled()
    first_page = console.text("tbody tr th, tbody td:first-child")
    console.wait(lambda: console.find(".pager button")[1].is_enabled(), what="next page")
    console.find(".pager button")[1].click()
    console.wait(lambda: "Page 2" in console.text("caption"), what="page 2")
    console.settled()
    assert console.text("tbody td:first-child") != first_page
    Select(console.one("select[name=sector]")).select_by_visible_text("Energy")
    console.one("form.filters button[type=submit]").click()
    console.wait(lambda: "sector=Energy" in console.driver.current_url, what="filtered")
    console.settled()
    sectors = [row.find_elements(By.TAG_NAME, "td")[2].text for row in console.find("tbody tr")]
    assert sectors and set(sectors) == {"Energy"}
    console.screenshot("stocks")

    # An error is shown from the API's envelope, with its request id.
    console.open("stocks/ZZZZ")
    console.settled()
    error = console.one("main .error")
    assert "404 STOCK_NOT_FOUND" in error.text
    assert re.fullmatch(r"[0-9a-f]{16,}", console.one("main .error .request-id").text)
    console.screenshot("error")

    # A stock: its chart is drawn, and redrawn weekly and as traded; its analysis; its
    # call from the model's view (market's read model of the latest live run).
    ml = _model_view(api, "ACME")
    console.open("stocks/ACME")
    console.settled()
    chart = console.one(".price-chart canvas")
    console.wait(lambda: console.drawn_pixels(chart) > 2000, what="price chart drawn")
    console.driver.find_element(By.XPATH, "//button[text()='Weekly']").click()
    console.wait(lambda: "weekly bars" in console.text(".card p.meta"), what="weekly bars")
    console.driver.find_element(By.XPATH, "//button[text()='Raw']").click()
    console.wait(lambda: "as traded" in console.text(".card p.meta"), what="raw bars")
    canvases = console.find(".price-chart canvas")
    assert max(console.drawn_pixels(c) for c in canvases) > 2000
    page = console.text("main")
    assert "Analysis" in page and "RSI (14)" in page
    assert ml["thesis"] in page and ml["methodology_disclosure"] in page
    assert console.one("aside.disclosure").is_displayed()
    console.screenshot("stock")

    # Live prices: a quote changes in place.
    console.open("live")
    console.wait(lambda: len(console.find("table.live tbody tr")) >= 3, what="watch list")
    console.wait(lambda: "—" not in console.text("td.price"), what="first quotes")
    before = console.text("td.price")
    console.wait(lambda: console.text("td.price") != before, timeout=30, what="a price change")
    assert console.one("h1 .badge").text == "open"
    console.screenshot("live")

    # Alerts: a rule made in the form fires, and its alert arrives live.
    console.open("alerts")
    console.settled()
    console.one("input[name=ticker]").send_keys("ACME")
    Select(console.one("select[name=condition]")).select_by_value("price_above")
    console.one("input[name=threshold]").send_keys("0.01")
    console.one("form.filters button[type=submit]").click()
    console.wait(lambda: "Rule created for ACME" in console.text("form.filters"), what="rule")
    alert = console.wait(lambda: console.text(".live-alerts li"), timeout=30, what="alert")
    assert "ACME rose above" in alert
    assert "ACME" in console.text(".toast")
    console.settled()
    # The rules table is redrawn: the rule fired, so it is no longer armed.
    console.wait(lambda: "active, armed" not in console.text("table"), what="rule disarmed")
    assert "price above" in console.text("table")
    console.screenshot("alerts")

    # Recommendations: the list with its disclosure, a call with factors and replay.
    console.open("recommendations")
    console.settled()
    assert console.one("aside.disclosure").is_displayed()
    assert console.find("tbody tr .badge")
    console.screenshot("recommendations")
    console.open(f"recommendations/{calls[0]['id']}")
    console.settled()
    assert console.drawn_pixels(console.one("main canvas")) > 200
    console.driver.find_element(By.XPATH, "//button[text()='Replay this call']").click()
    console.wait(lambda: "identical call" in console.text("main .ok"), what="replay")
    assert console.one("aside.disclosure").is_displayed()
    console.screenshot("recommendation")

    # The track record: live and hypothetical apart, each with its calibration.
    record = api.get(
        "/api/v1/recommendations/track-record", headers=_token(api, *ACCOUNTS["viewer"])
    ).json()
    console.open("track-record")
    console.settled()
    headings = console.text("h2")
    assert "Live calls" in headings and "Hypothetical calls" in headings
    judged = [part for part in ("live", "hypothetical") if record[part].get("calls")]
    assert len(console.find("main canvas")) == len(judged)
    for canvas in console.find("main canvas"):
        assert console.drawn_pixels(canvas) > 200
    assert "Methodology" in console.text("aside.disclosure")
    console.screenshot("track-record")

    # My portfolio: cash in, a position bought and valued, a rebalance proposed and applied.
    console.open("portfolio")
    console.settled()
    console.one("input[name=amount]").send_keys("20000")
    console.one("form[aria-label='Deposit cash'] button").click()
    console.wait(lambda: "Deposited" in console.text("main .ok"), what="deposit")
    console.settled()
    console.one("input[name=ticker]").send_keys("ACME")
    console.one("input[name=quantity]").send_keys("10")
    console.driver.find_element(By.XPATH, "//button[text()='Add']").click()
    console.wait(lambda: "Bought 10.0000 ACME" in console.text("main .ok"), what="bought")
    console.settled()
    row = console.wait(
        lambda: next((r for r in console.find("tbody tr") if r.text.startswith("ACME")), None),
        what="the ACME row",
    )
    cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
    quantity, price, value = _number(cells[1]), _number(cells[3]), _number(cells[4])
    assert quantity == 10 and price > 0
    # The page shows the price to the cent: the value agrees within that rounding.
    assert abs(value - quantity * price) <= quantity * Decimal("0.005") + Decimal("0.005")
    assert "TWR (time-weighted)" in console.text("th")
    assert "MWR (money-weighted" in console.text("th")
    console.screenshot("portfolio")
    Select(console.one("select[name=kind]")).select_by_value("equal")
    console.driver.find_element(By.XPATH, "//button[text()='Propose']").click()
    console.wait(lambda: console.find(".proposal"), what="proposal")
    proposal = console.text(".proposal")
    assert "Trades" in proposal and "Weights before and after" in proposal
    assert "BUY" in proposal  # 20,000 of cash towards one position at 98%
    console.screenshot("rebalance")
    console.driver.find_element(By.XPATH, "//button[text()='Apply these trades']").click()
    console.wait(lambda: "Applied:" in console.text(".proposal"), what="applied")

    assert not console.errors()
    # Nothing of the session is stored where another script could find it.
    stored = console.driver.execute_script(
        "return [localStorage.length, sessionStorage.length, document.cookie]"
    )
    assert stored == [0, 0, ""]
    console.sign_out()
    console.open("portfolio")
    assert console.one("input[name=username]").is_displayed()
    assert not console.find("#nav")[0].is_displayed()
    assert console.csp_violations() == []


def test_a_watchlist(console: Console, api: httpx.Client, newcomer: tuple[str, str]) -> None:
    """Made, filled, reordered and trimmed in the page; quotes live; calls beside them;
    an alert rule on the whole list."""
    _latest_calls(api)  # a run has completed: the list shows calls
    console.sign_in(*newcomer)
    console.open("watchlists")
    console.settled()
    console.one("input[name=name]").send_keys("Industrials")
    console.one("input[name=tickers]").send_keys("ACME, BRGT")
    console.driver.find_element(By.XPATH, "//button[text()='Create']").click()
    console.wait(lambda: console.text("h1") == "Industrials", what="the new list")
    console.settled()
    console.one("input[name=ticker]").send_keys("glxy")
    console.driver.find_element(By.XPATH, "//button[text()='Add']").click()

    def order() -> list[str]:
        return [r.text.split()[0] for r in console.find("main tbody tr")]

    console.wait(lambda: order() == ["ACME", "BRGT", "GLXY"], what="three tickers")
    console.one("button[aria-label='Move ACME down']").click()
    console.wait(lambda: order() == ["BRGT", "ACME", "GLXY"], what="reordered")
    console.one("button[aria-label='Remove GLXY']").click()
    console.wait(lambda: order() == ["BRGT", "ACME"], what="removed")
    console.settled()
    listed = api.get("/api/v1/watchlists", headers=_token(api, *newcomer)).json()["items"]
    assert [w["tickers"] for w in listed if w["name"] == "Industrials"] == [["BRGT", "ACME"]]
    assert console.find("main tbody .badge")  # the latest calls beside the quotes
    before = console.text("td.price")
    console.wait(lambda: console.text("td.price") != before, timeout=30, what="a live price")
    console.screenshot("watchlist")

    console.open("alerts")
    console.settled()
    scope = console.wait(
        lambda: next(
            (o for o in console.find("select[name=scope] option") if "Industrials" in o.text),
            None,
        ),
        what="the watchlist among the rule's scopes",
    )
    Select(console.one("select[name=scope]")).select_by_value(str(scope.get_attribute("value")))
    Select(console.one("select[name=condition]")).select_by_value("percent_move_up")
    console.one("input[name=threshold]").send_keys("50")
    # Realtime learns of the list from portfolio's event; until then it answers 404 and
    # says to retry, as a user would. Just after start-up that can take realtime's wait
    # for portfolio's stream (up to 30 s).
    deadline = time.monotonic() + 45
    while True:
        console.one("form.filters button[type=submit]").click()
        console.wait(lambda: console.find("form.filters .ok, form.filters .error"))
        if "Rule created for" in console.text("form.filters") or time.monotonic() > deadline:
            break
        assert "WATCHLIST_NOT_FOUND" in console.text("form.filters .error")
        time.sleep(1)
    assert "Rule created for" in console.text("form.filters .ok")
    console.settled()
    # The page lists it as a rule on the watchlist. Which tickers it covers is realtime's
    # copy of the list (fed by portfolio's events; realtime's own tests check it): on a
    # platform that has just started, realtime may not be consuming those events yet.
    rules = api.get("/api/v1/alerts", headers=_token(api, *newcomer)).json()["items"]
    listed_id = next(w["id"] for w in listed if w["name"] == "Industrials")
    assert [r["watchlist_id"] for r in rules if r["watchlist_id"]] == [listed_id]
    assert "watchlist (" in console.text("table")
    assert not console.errors()
    console.sign_out()


def test_admin_pages_are_for_admins_only(console: Console, api: httpx.Client) -> None:
    console.sign_in(*ACCOUNTS["viewer"])
    assert not console.find("li[data-role=admin] a")[0].is_displayed()
    console.open("admin")
    console.wait(lambda: "Not found" in console.text("h1"), what="no admin page")
    assert api.get("/api/v1/users", headers=_token(api, *ACCOUNTS["viewer"])).status_code == 403
    console.sign_out()

    console.sign_in(*ACCOUNTS["admin"])
    console.one("li[data-role=admin] a").click()
    console.settled()
    page = console.text("main")
    assert "Platform status" in page and "Recommendation runs" in page
    assert ACCOUNTS["viewer"][0] in console.text("table")
    assert not console.errors()
    console.screenshot("admin")
    console.sign_out()
    assert console.csp_violations() == []


def test_a_portfolio_with_history(console: Console, historian: tuple[str, str]) -> None:
    """The demo history (years of deposits, trades, dividends, a split): performance drawn
    with TWR and MWR labelled, allocation by position and by sector, the x-ray."""
    console.sign_in(*historian)
    console.open("portfolio")
    console.settled()
    headings = console.text("th")
    assert "TWR (time-weighted)" in headings and "MWR (money-weighted" in headings
    console.wait(lambda: len(console.find("main canvas")) == 3, what="three charts")
    assert all(console.drawn_pixels(c) > 500 for c in console.find("main canvas"))
    assert "Effective positions" in console.text("main")
    assert not console.errors()
    console.screenshot("portfolio-with-history")
    console.sign_out()


def test_phone_sized_screen(console: Console, newcomer: tuple[str, str]) -> None:
    console.driver.set_window_size(390, 844)
    try:
        console.sign_in(*newcomer)
        toggle = console.one("#nav-toggle")
        assert toggle.is_displayed() and not console.one("#nav").is_displayed()
        toggle.click()
        assert console.one("#nav").is_displayed()
        assert toggle.get_attribute("aria-expanded") == "true"
        console.screenshot("phone-menu")
        console.open("stocks/ACME")
        console.settled()
        chart = console.one(".price-chart canvas")
        console.wait(lambda: console.drawn_pixels(chart) > 1000, what="chart on a phone")
        width = console.driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390  # nothing wider than the screen: tables scroll in their box
        console.screenshot("phone-stock")
        console.sign_out()
    finally:
        console.driver.set_window_size(1280, 1000)


def test_api_docs_work_offline(console: Console, api: httpx.Client) -> None:
    document = api.get("/api/v1/openapi.json").json()
    operations = sum(
        1
        for item in document["paths"].values()
        for method in item
        if method in {"get", "put", "post", "delete", "patch"}
    )
    console.driver.get(console.base_url + "/docs")
    console.wait(lambda: len(console.find(".opblock")) == operations, what="every operation")
    assert console.find(".opblock-summary-path[data-path='/api/v1/stocks']")
    origins = console.driver.execute_script(
        "return performance.getEntriesByType('resource').map((e) => new URL(e.name).origin)"
    )
    assert set(origins) == {console.base_url}  # nothing from a CDN
    console.screenshot("api-docs")
    assert console.csp_violations() == []


@pytest.mark.skipif(
    os.environ.get("BOURSE_BROWSER_LONG") != "1",
    reason="about 40 s: run with BOURSE_BROWSER_LONG=1 (docs/console.md)",
)
def test_tokens_are_refreshed_silently(
    console: Console, platform: Platform, newcomer: tuple[str, str]
) -> None:
    """On a gateway whose access tokens live 30 s (the least it allows), the page
    refreshes its token before it expires and keeps working, with nothing stored."""
    short = platform.start_extra(
        "gateway", {"GATEWAY_ACCESS_TOKEN_TTL_SECONDS": "30"}, tag="-short-tokens"
    )
    try:
        wait_ready([short])
        page = Console(console.driver, short.url, console.shots)
        page.sign_in(*newcomer)
        page.open("market")
        page.settled()
        refreshes = "return performance.getEntriesByType('resource')" + (
            ".filter((e) => e.name.endsWith('/api/v1/auth/refresh')).length"
        )
        page.wait(lambda: page.driver.execute_script(refreshes) >= 1, timeout=35, what="refresh")
        time.sleep(10)  # past the first token's expiry: only the refreshed one is good now
        page.open("stocks")
        page.settled()
        assert page.find("tbody tr") and not page.errors()
        assert page.one("#who").text.startswith(newcomer[0])
        page.sign_out()
    finally:
        short.stop()
