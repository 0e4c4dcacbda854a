"""The market API end to end: every route through the gateway, on the demo universe the
platform was seeded with (simulated), success and error cases, caching headers."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from gateway.demo import DEMO_ACCOUNTS
from tests.conftest import login

pytestmark = pytest.mark.e2e

ACCOUNTS = {role: (username, password) for role, username, password in DEMO_ACCOUNTS}


@pytest.fixture
async def viewer(gateway: httpx.AsyncClient) -> dict[str, str]:
    return await login(gateway, *ACCOUNTS["viewer"])


def assert_error(response: httpx.Response, status: int, code: str) -> dict:  # type: ignore[type-arg]
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code
    assert set(body) == {"error_code", "message", "details", "timestamp", "request_id"}
    return body  # type: ignore[no-any-return]


async def test_list_filters_sorts_selects_fields_and_pages(
    gateway: httpx.AsyncClient, viewer: dict[str, str]
) -> None:
    params: dict[str, str | int] = {
        "sector": "Information Technology",
        "sort": "-market_cap",
        "limit": 3,
        "fields": "market_cap,sector",
    }
    first = await gateway.get("/api/v1/stocks", params=params, headers=viewer)
    assert first.status_code == 200, first.text
    page = first.json()
    assert all(set(item) == {"ticker", "market_cap", "sector"} for item in page["items"])
    assert all(item["sector"] == "Information Technology" for item in page["items"])
    second = await gateway.get(
        "/api/v1/stocks", params={**params, "cursor": page["next_cursor"]}, headers=viewer
    )
    caps = [i["market_cap"] for i in page["items"] + second.json()["items"]]
    assert caps == sorted(caps, reverse=True) and len(caps) == 6

    ranged = await gateway.get(
        "/api/v1/stocks",
        params={"min_price": 20, "max_price": 80, "min_volume": 1, "sort": "price", "limit": 500},
        headers=viewer,
    )
    prices = [i["last_price"] for i in ranged.json()["items"]]
    assert prices and prices == sorted(prices) and all(20 <= p <= 80 for p in prices)
    search = await gateway.get("/api/v1/stocks", params={"q": "acm"}, headers=viewer)
    assert "ACME" in [i["ticker"] for i in search.json()["items"]]
    industry = await gateway.get(
        "/api/v1/stocks", params={"industry": "Machinery", "exchange": "NYSE"}, headers=viewer
    )
    assert all(
        i["industry"] == "Machinery" and i["exchange"] == "NYSE" for i in industry.json()["items"]
    )

    assert_error(
        await gateway.get("/api/v1/stocks", params={"sort": "colour"}, headers=viewer),
        422,
        "VALIDATION_ERROR",
    )
    assert_error(
        await gateway.get("/api/v1/stocks", params={"fields": "secret"}, headers=viewer),
        422,
        "VALIDATION_ERROR",
    )
    assert_error(
        await gateway.get(
            "/api/v1/stocks",
            params={"sort": "price", "cursor": page["next_cursor"]},
            headers=viewer,
        ),
        422,
        "INVALID_CURSOR",
    )
    assert_error(
        await gateway.get("/api/v1/stocks", params={"limit": 0}, headers=viewer),
        422,
        "VALIDATION_ERROR",
    )


async def test_stock_detail_and_errors(gateway: httpx.AsyncClient, viewer: dict[str, str]) -> None:
    stock = (await gateway.get("/api/v1/stocks/acme", headers=viewer)).json()
    assert stock["ticker"] == "ACME" and stock["data_source"] == "simulated"
    for field in (
        "name",
        "sector",
        "last_price",
        "change_percent",
        "volume",
        "updated_at",
        "market_cap",
    ):
        assert stock[field] is not None, field
    assert_error(await gateway.get("/api/v1/stocks/ZZZZ", headers=viewer), 404, "STOCK_NOT_FOUND")
    assert_error(await gateway.get("/api/v1/stocks/BAD1", headers=viewer), 422, "VALIDATION_ERROR")
    assert_error(await gateway.get("/api/v1/stocks/ACME"), 401, "UNAUTHENTICATED")


async def test_prices_json_csv_intervals_and_caching(
    gateway: httpx.AsyncClient, viewer: dict[str, str]
) -> None:
    url = "/api/v1/stocks/ACME/prices"
    daily = await gateway.get(url, headers=viewer)
    assert daily.status_code == 200, daily.text
    body = daily.json()
    assert (
        body["interval"] == "daily" and body["adjusted"] is True and 240 <= len(body["bars"]) <= 260
    )
    bar = body["bars"][-1]
    assert (
        bar["low"]
        <= min(bar["open"], bar["close"])
        <= max(bar["open"], bar["close"])
        <= bar["high"]
    )

    weekly = (
        await gateway.get(url, params={"interval": "weekly", "adjusted": "false"}, headers=viewer)
    ).json()
    monthly = (await gateway.get(url, params={"interval": "monthly"}, headers=viewer)).json()
    assert 50 <= len(weekly["bars"]) <= 54 and 12 <= len(monthly["bars"]) <= 13
    assert all(b["last_day"] for b in weekly["bars"])

    as_csv = await gateway.get(
        url, params={"format": "csv", "start": "2025-01-01", "end": "2025-03-31"}, headers=viewer
    )
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert rows[0]["date"] >= "2025-01-02" and rows[-1]["date"] <= "2025-03-31" and len(rows) > 55
    # CSV and JSON carry the same fields, in the same order.
    assert list(rows[0]) == list(bar) and rows[0]["last_day"] == ""
    weekly_csv = await gateway.get(
        url, params={"format": "csv", "interval": "weekly", "start": "2025-01-01"}, headers=viewer
    )
    assert all(r["last_day"] for r in csv.DictReader(io.StringIO(weekly_csv.text)))

    # ETag / If-None-Match through the gateway, and gzip for the large JSON body.
    etag = daily.headers["etag"]
    again = await gateway.get(url, headers={**viewer, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    zipped = await gateway.get(url, headers={**viewer, "Accept-Encoding": "gzip"})
    assert zipped.headers.get("content-encoding") == "gzip" and zipped.json() == body

    assert_error(
        await gateway.get(url, params={"start": "2025-02-01", "end": "2025-01-01"}, headers=viewer),
        422,
        "INVALID_DATE_RANGE",
    )
    assert_error(
        await gateway.get(url, params={"interval": "hourly"}, headers=viewer),
        422,
        "VALIDATION_ERROR",
    )
    assert_error(
        await gateway.get("/api/v1/stocks/ZZZZ/prices", headers=viewer), 404, "STOCK_NOT_FOUND"
    )


async def test_long_history_is_streamed(gateway: httpx.AsyncClient, viewer: dict[str, str]) -> None:
    response = await gateway.get(
        "/api/v1/stocks/ACME/prices",
        params={"start": "1990-01-01", "format": "json"},
        headers=viewer,
    )
    assert response.status_code == 200 and "etag" not in response.headers
    body = response.json()
    assert body["start"] == "1990-01-01" and len(body["bars"]) > 700


async def test_analysis(gateway: httpx.AsyncClient, viewer: dict[str, str]) -> None:
    response = await gateway.get("/api/v1/stocks/ACME/analysis", headers=viewer)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ticker"] == "ACME" and body["adjusted"] is True
    assert {m["period"] for m in body["moving_averages"]} == {20, 50, 200}
    assert body["macd"]["fast_period"] == 12 and body["rsi"]["period"] == 14
    assert body["beta"]["benchmark"] == "universe index, total return"
    assert body["history"]["sessions"] > 700  # the whole adjusted history of the demo
    assert body["sharpe_ratio"]["risk_free_rate"] == body["sortino_ratio"]["risk_free_rate"] == 0
    assert all(m["warm_up_sessions"] == m["period"] for m in body["moving_averages"])
    assert_error(
        await gateway.get("/api/v1/stocks/ZZZZ/analysis", headers=viewer), 404, "STOCK_NOT_FOUND"
    )


async def test_market_overview_and_sectors(
    gateway: httpx.AsyncClient, viewer: dict[str, str]
) -> None:
    overview = (await gateway.get("/api/v1/market/overview", headers=viewer)).json()
    assert overview["breadth"]["total"] >= 100 and overview["index"]["level"] > 0
    assert overview["top_gainers"] and overview["most_active"]
    sectors = (await gateway.get("/api/v1/market/sectors", headers=viewer)).json()["sectors"]
    assert len(sectors) == 11 and all("1y" in s["performance_percent"] for s in sectors)
    assert_error(await gateway.get("/api/v1/market/overview"), 401, "UNAUTHENTICATED")


TICK_FIELDS = {"ticker", "price", "previous_close", "change", "change_percent", "volume", "ts"}


async def test_quote_snapshot_and_status(
    gateway: httpx.AsyncClient, viewer: dict[str, str]
) -> None:
    quotes = (await gateway.get("/api/v1/market/quotes", headers=viewer)).json()
    assert quotes["count"] == len(quotes["quotes"]) >= 100
    assert set(quotes["quotes"][0]) == TICK_FIELDS
    status = (await gateway.get("/api/v1/market/status", headers=viewer)).json()
    assert status["storage"] in {"native", "timescaledb"}
    assert status["universe_load"]["state"] == "complete"
    assert status["feed"] is not None


async def test_import_needs_admin_and_reports_what_it_did(
    gateway: httpx.AsyncClient, viewer: dict[str, str]
) -> None:
    admin = await login(gateway, *ACCOUNTS["admin"])
    csv_body = (
        "Date,Open,High,Low,Close,Volume\n"
        "2019-01-02,10,11,9,10.5,100\n"
        "2019-01-05,10,11,9,10.5,100\n"  # a Saturday
    )
    headers = {"Content-Type": "text/csv"}
    url = "/api/v1/market/imports"
    forbidden = await gateway.post(
        url, params={"ticker": "ACME"}, content=csv_body, headers={**viewer, **headers}
    )
    assert_error(forbidden, 403, "FORBIDDEN")
    done = await gateway.post(
        url, params={"ticker": "ACME"}, content=csv_body, headers={**admin, **headers}
    )
    assert done.status_code == 200, done.text
    summary = done.json()
    assert summary["rows"] == 2 and summary["rejections"] == {"not_a_session": 1}
    assert summary["inserted"] + summary["unchanged"] + summary["updated"] == 1
    bad = await gateway.post(url, content="x,y\n1,2\n", headers={**admin, **headers})
    assert_error(bad, 422, "INVALID_IMPORT")


async def test_weekly_and_monthly_bars_are_whole_periods_at_both_ends(
    gateway: httpx.AsyncClient, viewer: dict[str, str]
) -> None:
    url = "/api/v1/stocks/ACME/prices"
    # Wednesday 2025-01-08 to Wednesday 2025-02-12.
    params = {"start": "2025-01-08", "end": "2025-02-12", "interval": "weekly"}
    weekly = (await gateway.get(url, params=params, headers=viewer)).json()["bars"]
    assert weekly[0]["date"] == "2025-01-06" and weekly[-1]["date"] == "2025-02-10"
    assert weekly[-1]["last_day"] == "2025-02-14"  # the whole last week, past `end`
    monthly = (
        await gateway.get(url, params={**params, "interval": "monthly"}, headers=viewer)
    ).json()["bars"]
    assert [b["date"] for b in monthly] == ["2025-01-01", "2025-02-01"]
    assert monthly[-1]["last_day"] == "2025-02-28"
    daily = (
        await gateway.get(
            url,
            params={"start": "2025-02-01", "end": "2025-02-28", "adjusted": "false"},
            headers=viewer,
        )
    ).json()["bars"]
    raw_month = (
        await gateway.get(
            url, params={**params, "interval": "monthly", "adjusted": "false"}, headers=viewer
        )
    ).json()["bars"][-1]
    assert raw_month["close"] == daily[-1]["close"]
    assert raw_month["volume"] == sum(b["volume"] for b in daily)


async def test_the_index_history_is_served_with_both_variants(
    gateway: httpx.AsyncClient, viewer: dict[str, str]
) -> None:
    url = "/api/v1/market/index"
    whole = await gateway.get(url, headers=viewer)
    assert whole.status_code == 200, whole.text
    body = whole.json()
    levels = body["levels"]
    assert len(levels) > 500 and levels[0]["price_return"] == levels[0]["total_return"] == 1000.0
    assert levels[-1]["total_return"] > levels[-1]["price_return"]  # dividends reinvested
    assert "split-adjusted" in body["methodology"]
    assert body["start"] == levels[0]["date"] and body["end"] == levels[-1]["date"]
    part = (
        await gateway.get(
            url, params={"start": levels[10]["date"], "end": levels[20]["date"]}, headers=viewer
        )
    ).json()
    assert part["levels"] == levels[10:21]
    assert_error(
        await gateway.get(url, params={"start": "2025-02-01", "end": "2025-01-01"}, headers=viewer),
        422,
        "INVALID_DATE_RANGE",
    )
    sectors = (await gateway.get("/api/v1/market/sectors", headers=viewer)).json()
    assert "methodology" in sectors
    for sector in sectors["sectors"]:
        assert set(sector["equal_weighted_percent"]) == set(sector["performance_percent"])
        assert set(sector["total_return_percent"]) == set(sector["performance_percent"])
