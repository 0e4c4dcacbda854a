"""Alpha Vantage: ``function=TIME_SERIES_DAILY_ADJUSTED`` (raw OHLCV with the day's
``7. dividend amount`` and ``8. split coefficient``) or ``TIME_SERIES_DAILY`` (raw OHLCV
only: the function of the free plan), one security a call, ``outputsize=compact`` (the last
100 sessions) unless the range reaches further back. Alpha Vantage takes its key only as the
``apikey`` query parameter: the sync masks it in every log line (``redact_secret``).

Its answers are always HTTP 200: an error is ``{"Error Message": ...}`` (an unknown symbol:
that ticker is skipped), a throttle is ``{"Note": ...}`` or ``{"Information": ...}`` naming
the rate limit (retried by the client), and a premium function asked on a free key is an
``Information`` that names no limit (a configuration error: the sync stops and says so)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, timedelta
from typing import Any

from services.market.importers.providers import ProviderBar, ProviderClient
from services.market.providers.base import (
    ProviderAnswerError,
    ProviderDividend,
    ProviderSplit,
    SessionData,
)

SERIES_KEY = "Time Series (Daily)"
COMPACT_DAYS = 140  # calendar days the compact answer (100 sessions) surely covers


class UnknownSymbolError(ProviderAnswerError):
    """``{"Error Message": "Invalid API call. ..."}``: the symbol is not known."""


def parse_daily(ticker: str, body: Any) -> SessionData:
    if not isinstance(body, dict):
        raise ProviderAnswerError(f"alphavantage: unexpected answer {str(body)[:200]}")
    if "Error Message" in body:
        raise UnknownSymbolError(f"alphavantage: {body['Error Message']}")
    series = body.get(SERIES_KEY)
    if not isinstance(series, dict):
        text = body.get("Information") or body.get("Note") or str(body)[:200]
        raise ProviderAnswerError(f"alphavantage: {text}")
    data = SessionData()
    for raw_day, row in sorted(series.items()):
        day = date.fromisoformat(raw_day)
        volume_key = "6. volume" if "6. volume" in row else "5. volume"
        data.bars.append(
            ProviderBar(
                ticker,
                day,
                float(row["1. open"]),
                float(row["2. high"]),
                float(row["3. low"]),
                float(row["4. close"]),
                float(row[volume_key]),
            )
        )
        dividend = float(row.get("7. dividend amount") or 0.0)
        if dividend > 0:
            data.dividends.append(ProviderDividend(ticker, day, dividend))
        coefficient = float(row.get("8. split coefficient") or 1.0)
        if coefficient > 0 and coefficient != 1.0:
            data.splits.append(ProviderSplit(ticker, day, coefficient))
    return data


class AlphaVantageSync:
    name = "alphavantage"

    def __init__(
        self, client: ProviderClient, *, api_key: str, base_url: str, adjusted: bool = True
    ) -> None:
        self._client = client
        self._key = api_key
        self._base = base_url.rstrip("/")
        self._function = "TIME_SERIES_DAILY_ADJUSTED" if adjusted else "TIME_SERIES_DAILY"

    async def fetch(self, start: date, end: date, tickers: Collection[str]) -> SessionData:
        size = "compact" if date.today() - start <= timedelta(days=COMPACT_DAYS) else "full"
        data = SessionData()
        # One at a time: the free plan allows a few calls a minute, a burst only throttles.
        for ticker in sorted(tickers):
            params = {
                "function": self._function,
                "symbol": ticker,
                "outputsize": size,
                "apikey": self._key,
            }
            body = await self._client.get_json(f"{self._base}/query", params)
            try:
                part = parse_daily(ticker, body)
            except UnknownSymbolError:
                data.unknown_tickers.append(ticker)
                continue
            data.bars.extend(b for b in part.bars if start <= b.day <= end)
            data.splits.extend(s for s in part.splits if start <= s.ex_date <= end)
            data.dividends.extend(d for d in part.dividends if start <= d.ex_date <= end)
        return data
