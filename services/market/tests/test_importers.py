"""CSV layouts and the provider adapter (on recorded responses: see recorded/README.md)."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.market.importers import csv_files
from services.market.importers.providers import (
    PolygonProvider,
    ProviderClient,
    ProviderError,
    ThrottledError,
    throttled_body,
)

RECORDED = Path(__file__).parent / "recorded"

YAHOO = """Date,Open,High,Low,Close,Adj Close,Volume
2024-01-02,187.149994,188.440002,183.889999,185.639999,184.938217,82488700
2024-01-03,184.220001,185.880005,183.429993,184.250000,183.553467,58414500
2024-01-04,null,null,null,null,null,null
"""

STOOQ = """Date,Open,High,Low,Close,Volume
2024-01-02,187.15,188.44,183.885,185.64,82488674
"""

STOOQ_BULK = """<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>
AAPL.US,D,20240102,000000,187.15,188.44,183.885,185.64,82488674,0
BRK-B.US,D,20240102,000000,357.2,361.25,356.61,360.68,3213112,0
AAPL.US,5,20240102,153000,185.5,185.7,185.4,185.64,1000000,0
BAD.US,D,20240102,000000,1,2
"""


def test_yahoo_layout_keeps_raw_close_and_marks_null_as_nan() -> None:
    parsed = csv_files.parse(YAHOO, ticker="aapl")
    assert parsed.layout == "yahoo"
    assert parsed.tickers == ["AAPL"] * 3
    assert parsed.close[:2] == [185.639999, 184.25]  # Close, not Adj Close
    assert parsed.days[0] == date(2024, 1, 2) and parsed.lines == [2, 3, 4]
    assert math.isnan(parsed.open[2]) and math.isnan(parsed.volume[2])


def test_stooq_layouts() -> None:
    single = csv_files.parse(STOOQ, ticker="AAPL")
    assert single.layout == "stooq" and single.volume == [82488674.0]
    bulk = csv_files.parse(STOOQ_BULK)
    assert bulk.layout == "stooq_bulk"
    assert bulk.tickers == ["AAPL", "BRK-B"]  # intraday (<PER> 5) rows skipped
    assert bulk.days == [date(2024, 1, 2)] * 2
    assert bulk.malformed == [(5, "BAD.US,D,20240102,000000,1,2")]


def test_unknown_header_and_missing_ticker_are_errors() -> None:
    with pytest.raises(csv_files.CsvLayoutError):
        csv_files.parse("when,price\n2024-01-02,1\n")
    with pytest.raises(csv_files.CsvLayoutError):
        csv_files.parse(YAHOO)  # which security?
    with pytest.raises(csv_files.CsvLayoutError):
        csv_files.parse(YAHOO, ticker="AAPL", layout="stooq")


def _recorded(name: str) -> dict[str, Any]:
    recorded: dict[str, Any] = json.loads((RECORDED / name).read_text())
    return recorded


def _client(handler) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def _no_sleep(_: float) -> None:
    return None


async def test_grouped_daily_is_one_call_for_the_whole_market() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=_recorded("polygon_grouped_2024-01-03.json"))

    async with _client(handler) as http:
        provider = PolygonProvider(ProviderClient(http, sleep=_no_sleep), api_key="k")
        bars = await provider.grouped_daily(date(2024, 1, 3))
    assert len(seen) == 1
    assert seen[0].url.path == "/v2/aggs/grouped/locale/us/market/stocks/2024-01-03"
    assert seen[0].url.params["adjusted"] == "false"
    assert [b.ticker for b in bars] == ["ACME", "BRGT", "ZQXW", "CLDX"]
    assert {b.day for b in bars} == {date(2024, 1, 3)}  # midnight New York, not UTC
    assert bars[0].close == 30.4 and bars[0].volume == 1523400


async def test_range_follows_next_url_pages() -> None:
    pages = iter(["polygon_range_page1.json", "polygon_range_page2.json"])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=_recorded(next(pages)))

    async with _client(handler) as http:
        provider = PolygonProvider(ProviderClient(http, sleep=_no_sleep), api_key="k")
        bars = await provider.daily_bars("ACME", date(2024, 1, 2), date(2024, 1, 5))
    assert [b.day for b in bars] == [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)]


async def test_retries_429_and_5xx_with_backoff_honouring_retry_after() -> None:
    answers = [
        httpx.Response(429, json=_recorded("polygon_429.json"), headers={"Retry-After": "7"}),
        httpx.Response(502, text="Bad Gateway"),
        httpx.Response(200, json=_recorded("polygon_grouped_2024-01-03.json")),
    ]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with _client(lambda _: answers.pop(0)) as http:
        client = ProviderClient(http, sleep=sleep, backoff=1.0)
        bars = await PolygonProvider(client, api_key="k").grouped_daily(date(2024, 1, 3))
    assert len(bars) == 4 and client.attempts == 3
    assert sleeps[0] == 7.0  # Retry-After
    assert 1.0 <= sleeps[1] <= 2.0  # second attempt: 2 s with jitter in [50%, 100%]


async def test_throttling_sent_as_200_is_detected_and_retried() -> None:
    throttle_200 = {
        "status": "ERROR",
        "request_id": "x",
        "error": _recorded("polygon_429.json")["error"],
    }
    alpha_vantage_style = {
        "Note": "Thank you for using our API! Our standard API call frequency is"
        " 5 calls per minute."
    }
    assert throttled_body(throttle_200) and throttled_body(alpha_vantage_style)
    assert not throttled_body(_recorded("polygon_grouped_2024-01-03.json"))
    answers = [httpx.Response(200, json=throttle_200)] * 3
    async with _client(lambda _: answers.pop(0)) as http:
        client = ProviderClient(http, sleep=_no_sleep, max_attempts=3)
        with pytest.raises(ThrottledError):
            await PolygonProvider(client, api_key="k").grouped_daily(date(2024, 1, 3))
    assert client.attempts == 3


async def test_client_errors_are_not_retried() -> None:
    async with _client(lambda _: httpx.Response(403, json={"status": "NOT_AUTHORIZED"})) as http:
        client = ProviderClient(http, sleep=_no_sleep)
        with pytest.raises(ProviderError):
            await PolygonProvider(client, api_key="bad").grouped_daily(date(2024, 1, 3))
    assert client.attempts == 1


async def test_concurrency_is_bounded_by_the_semaphore() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)
        return httpx.Response(200, json=_recorded("polygon_range_page2.json"))

    async with _client(handler) as http:
        client = ProviderClient(http, concurrency=3, sleep=_no_sleep)
        provider = PolygonProvider(client, api_key="k")
        results = await asyncio.gather(
            *(provider.daily_bars(f"T{i}", date(2024, 1, 4), date(2024, 1, 4)) for i in range(12))
        )
    assert len(results) == 12 and client.max_in_flight == 3
