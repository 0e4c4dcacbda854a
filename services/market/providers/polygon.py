"""Polygon.io: the grouped daily bars (``/v2/aggs/grouped/locale/us/market/stocks/{date}``,
every US stock's bar of one session in one call, unadjusted), the splits
(``/v3/reference/splits``) and the cash dividends (``/v3/reference/dividends``), paged by
``next_url``. The key goes in the ``Authorization: Bearer`` header Polygon accepts."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Any

from services.market.domain import calendar
from services.market.importers.providers import ProviderClient, polygon_bar
from services.market.providers.base import (
    ProviderAnswerError,
    ProviderDividend,
    ProviderSplit,
    SessionData,
)

# Documented statuses of a successful answer (DELAYED: a plan without real-time data).
_OK = ("OK", "DELAYED")


def check(body: Any) -> dict[str, Any]:
    """``body`` if it is a successful answer; its documented error otherwise."""
    if not isinstance(body, dict):
        raise ProviderAnswerError(f"polygon: unexpected answer {str(body)[:200]}")
    if body.get("status") not in _OK:
        text = body.get("error") or body.get("message") or body.get("status")
        raise ProviderAnswerError(f"polygon: {text}")
    return body


def parse_grouped(body: Any, tickers: Collection[str]) -> list[Any]:
    """The bars of a grouped-daily answer for ``tickers`` (all when empty)."""
    wanted = set(tickers)
    return [
        polygon_bar(str(item["T"]), item)
        for item in check(body).get("results") or []
        if not wanted or item.get("T") in wanted
    ]


def parse_splits(body: Any, tickers: Collection[str]) -> list[ProviderSplit]:
    wanted = set(tickers)
    found = []
    for item in check(body).get("results") or []:
        if wanted and item.get("ticker") not in wanted:
            continue
        split_from, split_to = float(item["split_from"]), float(item["split_to"])
        if split_from <= 0 or split_to <= 0:
            continue
        found.append(
            ProviderSplit(
                str(item["ticker"]),
                date.fromisoformat(item["execution_date"]),
                split_to / split_from,
            )
        )
    return found


def parse_dividends(body: Any, tickers: Collection[str]) -> list[ProviderDividend]:
    """Cash dividends in US dollars (regular ``CD`` and special ``SC``; ``LT``/``ST``
    capital-gain distributions of funds are cash too and kept)."""
    wanted = set(tickers)
    found = []
    for item in check(body).get("results") or []:
        if wanted and item.get("ticker") not in wanted:
            continue
        if item.get("currency", "USD") != "USD" or float(item.get("cash_amount") or 0) <= 0:
            continue
        found.append(
            ProviderDividend(
                str(item["ticker"]),
                date.fromisoformat(item["ex_dividend_date"]),
                float(item["cash_amount"]),
            )
        )
    return found


class PolygonSync:
    name = "polygon"

    def __init__(self, client: ProviderClient, *, api_key: str, base_url: str) -> None:
        self._client = client
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._base = base_url.rstrip("/")

    async def _pages(self, url: str, params: dict[str, str] | None) -> list[Any]:
        bodies = []
        next_url: str | None = url
        while next_url:
            body = check(await self._client.get_json(next_url, params, headers=self._headers))
            bodies.append(body)
            next_url = body.get("next_url")
            params = None  # next_url carries the query (and a cursor)
        return bodies

    async def fetch(self, start: date, end: date, tickers: Collection[str]) -> SessionData:
        data = SessionData()
        for day in calendar.sessions(start, end):
            session = calendar.to_date(day).isoformat()
            url = f"{self._base}/v2/aggs/grouped/locale/us/market/stocks/{session}"
            body = await self._client.get_json(url, {"adjusted": "false"}, headers=self._headers)
            data.bars.extend(parse_grouped(body, tickers))
        window = {"gte": start.isoformat(), "lte": end.isoformat()}
        for body in await self._pages(
            f"{self._base}/v3/reference/splits",
            {f"execution_date.{k}": v for k, v in window.items()} | {"limit": "1000"},
        ):
            data.splits.extend(parse_splits(body, tickers))
        for body in await self._pages(
            f"{self._base}/v3/reference/dividends",
            {f"ex_dividend_date.{k}": v for k, v in window.items()} | {"limit": "1000"},
        ):
            data.dividends.extend(parse_dividends(body, tickers))
        return data
