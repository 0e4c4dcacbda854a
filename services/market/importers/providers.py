"""End-of-day data providers over HTTP.

:class:`EodProvider` is what the import service needs: one security's daily bars over a
range, and the whole market's bars of one day where the provider has such a call.
:class:`PolygonProvider` implements it for Polygon.io's aggregates API
(``/v2/aggs/ticker/{T}/range/1/day/{from}/{to}`` and the grouped daily
``/v2/aggs/grouped/locale/us/market/stocks/{date}``), unadjusted, since adjustment is ours.

Every call goes through :class:`ProviderClient`: at most ``concurrency`` requests in flight
(a semaphore), retries with exponential backoff and jitter on 429 and 5xx (``Retry-After``
honoured) and on transport errors, and a detector for throttling that arrives as HTTP 200
(a JSON body saying the rate limit was exceeded instead of data), retried like a 429.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import httpx

logger = logging.getLogger("services.market.providers")

NEW_YORK = ZoneInfo("America/New_York")

# Phrases providers use when they throttle with a 200 (Polygon's error text, Alpha
# Vantage's "Note"/"Information", generic gateways).
_THROTTLE_PHRASES = (
    "exceeded the maximum requests",
    "rate limit",
    "too many requests",
    "call frequency",
    "requests per minute",
    "request allocation",  # Tiingo: "You have run over your hourly request allocation"
)


class ProviderError(RuntimeError):
    """The provider failed for good (after retries, or a client error: ``status``)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ThrottledError(ProviderError):
    """Still throttled after every retry."""


@dataclass(frozen=True)
class ProviderBar:
    ticker: str
    day: date
    open: float
    high: float
    low: float
    close: float
    volume: float


class EodProvider(Protocol):
    name: str

    async def daily_bars(self, ticker: str, start: date, end: date) -> list[ProviderBar]: ...

    async def grouped_daily(self, day: date) -> list[ProviderBar]: ...


def throttled_body(body: Any) -> bool:
    """Whether a 200 response's JSON is a throttling notice rather than data."""
    if not isinstance(body, dict):
        return False
    texts = []
    for key in ("error", "message", "Note", "Information", "status_message", "detail"):
        value = body.get(key)
        if isinstance(value, str):
            texts.append(value.lower())
    if (
        body.get("status") in ("ERROR", "error")
        or "Note" in body
        or "Information" in body
        or "detail" in body
    ):
        return any(phrase in text for text in texts for phrase in _THROTTLE_PHRASES)
    return False


class ProviderClient:
    """Bounded, retrying JSON GETs (see the module docstring)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        concurrency: int = 4,
        max_attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._client = client
        self._slots = asyncio.Semaphore(concurrency)
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._sleep = sleep
        self.in_flight = 0
        self.max_in_flight = 0
        self.attempts = 0

    async def get_json(
        self,
        url: str,
        params: dict[str, str] | None,
        *,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """The JSON body of ``GET url``; credentials go in ``headers`` where the provider
        takes them there, so they never appear in a URL (which httpx logs). ``params``
        replace the URL's query string (httpx), so a ``next_url`` is followed with None."""
        for attempt in range(1, self._max_attempts + 1):
            delay: float | None = None
            async with self._slots:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                self.attempts += 1
                try:
                    response = await self._client.get(url, params=params, headers=headers)
                except httpx.TransportError as exc:
                    logger.warning("provider request failed (%s), attempt %d", exc, attempt)
                    delay = self._delay(attempt)
                    response = None
                finally:
                    self.in_flight -= 1
            if response is not None:
                status = response.status_code
                if status == 429 or status >= 500:
                    delay = self._retry_after(response) or self._delay(attempt)
                    logger.warning("provider answered %d, attempt %d", status, attempt)
                elif status >= 400:
                    raise ProviderError(
                        f"provider answered {status}: {response.text[:200]}", status=status
                    )
                else:
                    body = response.json()
                    if not throttled_body(body):
                        return body
                    delay = self._delay(attempt)
                    logger.warning("provider throttled with a 200, attempt %d", attempt)
            if attempt < self._max_attempts:
                await self._sleep(delay or 0.0)
        raise ThrottledError(f"provider still failing after {self._max_attempts} attempts")

    def _delay(self, attempt: int) -> float:
        base = min(self._max_backoff, self._backoff * 2.0 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)  # jitter: spread retries of a burst

    def _retry_after(self, response: httpx.Response) -> float | None:
        value = response.headers.get("retry-after")
        if value is None:
            return None
        try:
            return min(self._max_backoff, max(0.0, float(value)))
        except ValueError:
            return None


def polygon_bar(ticker: str, item: dict[str, Any]) -> ProviderBar:
    """A bar of Polygon's aggregates (``t`` is the session's midnight in New York)."""
    day = datetime.fromtimestamp(int(item["t"]) / 1000, NEW_YORK).date()
    return ProviderBar(
        ticker=ticker,
        day=day,
        open=float(item.get("o", "nan")),
        high=float(item.get("h", "nan")),
        low=float(item.get("l", "nan")),
        close=float(item.get("c", "nan")),
        volume=float(item.get("v", "nan")),
    )


class PolygonProvider:
    """Polygon.io end-of-day aggregates (unadjusted)."""

    name = "polygon"

    def __init__(
        self, client: ProviderClient, *, api_key: str, base_url: str = "https://api.polygon.io"
    ) -> None:
        self._client = client
        self._api_key = api_key
        self._base = base_url.rstrip("/")

    async def daily_bars(self, ticker: str, start: date, end: date) -> list[ProviderBar]:
        url: str | None = (
            f"{self._base}/v2/aggs/ticker/{ticker}/range/1/day/{start.isoformat()}/{end.isoformat()}"
        )
        params = {"adjusted": "false", "sort": "asc", "limit": "50000", "apiKey": self._api_key}
        bars: list[ProviderBar] = []
        while url:
            body = await self._client.get_json(url, params)
            bars.extend(polygon_bar(ticker, item) for item in body.get("results") or [])
            url = body.get("next_url")
            params = {"apiKey": self._api_key}  # next_url carries the rest
        return bars

    async def grouped_daily(self, day: date) -> list[ProviderBar]:
        url = f"{self._base}/v2/aggs/grouped/locale/us/market/stocks/{day.isoformat()}"
        body = await self._client.get_json(url, {"adjusted": "false", "apiKey": self._api_key})
        return [polygon_bar(str(item["T"]), item) for item in body.get("results") or []]
