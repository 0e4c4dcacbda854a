"""The sync's provider adapters on fixtures written by hand in each provider's documented
format (services/market/tests/recorded/README.md: no provider is reachable from here),
their documented error and throttle answers included, through the real retrying client
over an httpx mock transport."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.market.config import MarketSettings
from services.market.importers.providers import ProviderClient, ThrottledError, throttled_body
from services.market.providers import (
    ProviderAnswerError,
    ProviderDividend,
    ProviderSplit,
    make_provider,
    redact_secret,
)
from services.market.providers.alphavantage import AlphaVantageSync, parse_daily
from services.market.providers.base import remove_redaction
from services.market.providers.polygon import PolygonSync, parse_dividends, parse_splits
from services.market.providers.tiingo import TiingoSync, parse_prices

RECORDED = Path(__file__).parent / "recorded"


def recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


async def _no_sleep(_: float) -> None:
    return None


def client(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> ProviderClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return ProviderClient(http, sleep=_no_sleep, **kwargs)


# --- Polygon ---------------------------------------------------------------------------


def test_polygon_splits_give_new_shares_per_old_share() -> None:
    assert parse_splits(recorded("polygon_splits.json"), {"ACME", "OTHR"}) == [
        ProviderSplit("ACME", date(2024, 1, 9), 2.0),
        ProviderSplit("OTHR", date(2024, 1, 9), 0.1),  # a 1-for-10 reverse split
    ]
    assert parse_splits(recorded("polygon_splits.json"), {"ACME"}) == [
        ProviderSplit("ACME", date(2024, 1, 9), 2.0)
    ]


def test_polygon_dividends_keep_dollar_cash_only() -> None:
    assert parse_dividends(recorded("polygon_dividends.json"), {"BRGT", "CLDX"}) == [
        ProviderDividend("BRGT", date(2024, 1, 10), 0.24)  # CLDX pays in CAD: not ours
    ]


@pytest.mark.parametrize("name", ["polygon_401.json", "polygon_403_not_authorized.json"])
def test_polygon_error_bodies_are_errors(name: str) -> None:
    with pytest.raises(ProviderAnswerError, match=r"API Key|not entitled"):
        parse_splits(recorded(name), set())


async def test_polygon_fetch_walks_sessions_and_pages_with_the_key_in_a_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if path.startswith("/v2/aggs/grouped"):
            return httpx.Response(200, json=recorded("polygon_grouped_2024-01-03.json"))
        if path == "/v3/reference/splits":
            page = "cursor" in request.url.params
            return httpx.Response(
                200, json=recorded("polygon_splits_page2.json" if page else "polygon_splits.json")
            )
        return httpx.Response(200, json=recorded("polygon_dividends.json"))

    provider = PolygonSync(client(handler), api_key="s3cret", base_url="https://api.polygon.io")
    # 2024-01-06/07 are a weekend: two sessions, two grouped calls.
    data = await provider.fetch(date(2024, 1, 5), date(2024, 1, 8), {"ACME", "BRGT"})
    grouped = [r.url.path for r in seen if r.url.path.startswith("/v2/")]
    assert grouped == [
        "/v2/aggs/grouped/locale/us/market/stocks/2024-01-05",
        "/v2/aggs/grouped/locale/us/market/stocks/2024-01-08",
    ]
    assert {b.ticker for b in data.bars} == {"ACME", "BRGT"}
    assert [s.ticker for s in data.splits] == ["ACME", "BRGT"]  # both pages
    assert data.dividends == [ProviderDividend("BRGT", date(2024, 1, 10), 0.24)]
    splits = next(r for r in seen if r.url.path == "/v3/reference/splits")
    assert splits.url.params["execution_date.gte"] == "2024-01-05"
    assert all(r.headers["Authorization"] == "Bearer s3cret" for r in seen)
    assert all("s3cret" not in str(r.url) for r in seen)


async def test_polygon_throttle_429_then_data() -> None:
    answers = [
        httpx.Response(429, json=recorded("polygon_429.json"), headers={"Retry-After": "1"}),
        httpx.Response(200, json=recorded("polygon_grouped_2024-01-03.json")),
        httpx.Response(200, json={"status": "OK", "results": []}),
        httpx.Response(200, json={"status": "OK", "results": []}),
    ]
    provider_client = client(lambda _: answers.pop(0))
    data = await PolygonSync(provider_client, api_key="k", base_url="http://x").fetch(
        date(2024, 1, 3), date(2024, 1, 3), set()
    )
    assert len(data.bars) == 4 and provider_client.attempts == 4


# --- Tiingo ----------------------------------------------------------------------------


def test_tiingo_prices_are_raw_with_actions_from_div_cash_and_split_factor() -> None:
    data = parse_prices("ACME", recorded("tiingo_prices_acme.json"))
    assert [(b.day, b.close, b.volume) for b in data.bars] == [
        (date(2024, 1, 8), 31.2, 1611200.0),  # "close", not "adjClose"
        (date(2024, 1, 9), 15.9, 3402100.0),
        (date(2024, 1, 10), 16.05, 2980400.0),
    ]
    assert data.splits == [ProviderSplit("ACME", date(2024, 1, 9), 2.0)]
    assert data.dividends == [ProviderDividend("ACME", date(2024, 1, 10), 0.12)]


def test_tiingo_error_detail_is_an_error_and_its_throttle_is_recognised() -> None:
    with pytest.raises(ProviderAnswerError, match="Invalid token"):
        parse_prices("ACME", recorded("tiingo_bad_token.json"))
    assert throttled_body(recorded("tiingo_throttled.json"))
    assert not throttled_body(recorded("tiingo_404.json"))


async def test_tiingo_skips_an_unknown_ticker_and_retries_its_throttle() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if "zzzz" in request.url.path:
            return httpx.Response(404, json=recorded("tiingo_404.json"))
        if sum("acme" in r.url.path for r in seen) == 1:
            return httpx.Response(429, json=recorded("tiingo_throttled.json"))
        return httpx.Response(200, json=recorded("tiingo_prices_acme.json"))

    provider = TiingoSync(client(handler), api_key="tok", base_url="https://api.tiingo.com")
    data = await provider.fetch(date(2024, 1, 9), date(2024, 1, 10), {"ACME", "ZZZZ"})
    assert data.unknown_tickers == ["ZZZZ"]
    assert [b.day for b in data.bars] == [date(2024, 1, 9), date(2024, 1, 10)]  # in range
    acme = [r for r in seen if "acme" in r.url.path]
    assert len(acme) == 2 and acme[0].url.path == "/tiingo/daily/acme/prices"
    assert acme[0].url.params["startDate"] == "2024-01-09"
    assert acme[0].headers["Authorization"] == "Token tok"


# --- Alpha Vantage ---------------------------------------------------------------------


def test_alphavantage_adjusted_and_plain_daily() -> None:
    adjusted = parse_daily("ACME", recorded("alphavantage_daily_adjusted.json"))
    assert [(b.day, b.close) for b in adjusted.bars] == [
        (date(2024, 1, 8), 31.2),  # "4. close" (as traded), not "5. adjusted close"
        (date(2024, 1, 9), 15.9),
        (date(2024, 1, 10), 16.05),
    ]
    assert adjusted.bars[0].volume == 1611200.0
    assert adjusted.splits == [ProviderSplit("ACME", date(2024, 1, 9), 2.0)]
    assert adjusted.dividends == [ProviderDividend("ACME", date(2024, 1, 10), 0.12)]
    plain = parse_daily("ACME", recorded("alphavantage_daily.json"))
    assert [b.volume for b in plain.bars] == [3402100.0, 2980400.0]  # "5. volume"
    assert not plain.splits and not plain.dividends


def test_alphavantage_throttles_are_throttles_and_premium_is_an_error() -> None:
    assert throttled_body(recorded("alphavantage_note.json"))
    assert throttled_body(recorded("alphavantage_daily_limit.json"))
    assert not throttled_body(recorded("alphavantage_premium.json"))
    with pytest.raises(ProviderAnswerError, match="premium endpoint"):
        parse_daily("ACME", recorded("alphavantage_premium.json"))


async def test_alphavantage_skips_unknown_symbols_and_gives_up_when_still_throttled() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        symbol = request.url.params["symbol"]
        name = "alphavantage_error.json" if symbol == "ZZZZ" else "alphavantage_daily.json"
        return httpx.Response(200, json=recorded(name))

    provider = AlphaVantageSync(
        client(handler), api_key="k", base_url="https://www.alphavantage.co", adjusted=False
    )
    data = await provider.fetch(date(2024, 1, 10), date(2024, 1, 10), {"ACME", "ZZZZ"})
    assert data.unknown_tickers == ["ZZZZ"] and [b.day for b in data.bars] == [date(2024, 1, 10)]

    throttled = client(lambda _: httpx.Response(200, json=recorded("alphavantage_note.json")))
    provider = AlphaVantageSync(throttled, api_key="k", base_url="http://x")
    with pytest.raises(ThrottledError):
        await provider.fetch(date(2024, 1, 10), date(2024, 1, 10), {"ACME"})
    assert throttled.attempts == 5


async def test_the_key_is_masked_in_every_log_line(caplog: pytest.LogCaptureFixture) -> None:
    key = "AV-SECRET-KEY-123"
    settings = MarketSettings(
        provider="alphavantage",
        provider_api_key=key,
        provider_base_url="http://127.0.0.1:9",
        provider_max_attempts=2,
        provider_max_backoff=0.01,
        database_url="postgresql://x/y",
        redis_url="redis://x",
        nats_url="nats://x",
        jwks_url="http://x/jwks",
    )
    guard = redact_secret(key)
    try:
        with caplog.at_level(logging.DEBUG):
            async with httpx.AsyncClient() as http:
                provider = make_provider(settings, http)
                assert provider is not None
                with pytest.raises(ThrottledError):  # nothing listens on port 9
                    await provider.fetch(date(2024, 1, 10), date(2024, 1, 10), {"ACME"})
            logging.getLogger("httpx").info("HTTP Request: GET http://x/query?apikey=%s", key)
    finally:
        remove_redaction(guard)
    assert caplog.records and all(key not in r.getMessage() for r in caplog.records)
    assert "apikey=***" in caplog.text
    assert key not in repr(settings)
