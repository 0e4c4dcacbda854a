"""Tiingo end-of-day prices: ``/tiingo/daily/{ticker}/prices?startDate=&endDate=``, one
security a call, a list of days with the raw ``open high low close volume`` (as traded) and
the day's ``divCash`` and ``splitFactor`` (the actions going ex that day). The key goes in
the ``Authorization: Token`` header Tiingo documents. An unknown ticker is a 404 with
``{"detail": "Error: Ticker 'X' not found"}``: that ticker is skipped, not the sync."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import date
from typing import Any

from services.market.importers.providers import ProviderBar, ProviderClient, ProviderError
from services.market.providers.base import (
    ProviderAnswerError,
    ProviderDividend,
    ProviderSplit,
    SessionData,
)


def parse_prices(ticker: str, body: Any) -> SessionData:
    """One ticker's answer: bars, and actions from ``divCash`` / ``splitFactor``."""
    if isinstance(body, dict):  # an error: {"detail": "..."}
        raise ProviderAnswerError(f"tiingo: {body.get('detail') or str(body)[:200]}")
    if not isinstance(body, list):
        raise ProviderAnswerError(f"tiingo: unexpected answer {str(body)[:200]}")
    data = SessionData()
    for item in body:
        day = date.fromisoformat(str(item["date"])[:10])
        data.bars.append(
            ProviderBar(
                ticker,
                day,
                _number(item, "open"),
                _number(item, "high"),
                _number(item, "low"),
                _number(item, "close"),
                _number(item, "volume"),
            )
        )
        dividend = float(item.get("divCash") or 0.0)
        if dividend > 0:
            data.dividends.append(ProviderDividend(ticker, day, dividend))
        factor = float(item.get("splitFactor") or 1.0)
        if factor > 0 and factor != 1.0:
            data.splits.append(ProviderSplit(ticker, day, factor))
    return data


def _number(item: dict[str, Any], key: str) -> float:
    value = item.get(key)
    return float(value) if value is not None else float("nan")


class TiingoSync:
    name = "tiingo"

    def __init__(self, client: ProviderClient, *, api_key: str, base_url: str) -> None:
        self._client = client
        self._headers = {"Authorization": f"Token {api_key}"}
        self._base = base_url.rstrip("/")

    async def _one(self, ticker: str, start: date, end: date) -> SessionData:
        url = f"{self._base}/tiingo/daily/{ticker.lower()}/prices"
        params = {"startDate": start.isoformat(), "endDate": end.isoformat(), "format": "json"}
        try:
            body = await self._client.get_json(url, params, headers=self._headers)
        except ProviderError as exc:
            if exc.status == 404:
                return SessionData(unknown_tickers=[ticker])
            raise
        return parse_prices(ticker, body)

    async def fetch(self, start: date, end: date, tickers: Collection[str]) -> SessionData:
        parts = await asyncio.gather(*(self._one(t, start, end) for t in sorted(tickers)))
        data = SessionData()
        for part in parts:
            data.bars.extend(b for b in part.bars if start <= b.day <= end)
            data.splits.extend(s for s in part.splits if start <= s.ex_date <= end)
            data.dividends.extend(d for d in part.dividends if start <= d.ex_date <= end)
            data.unknown_tickers.extend(part.unknown_tickers)
        return data
