"""The interface of a provider the sync fetches from, what it returns, and the guard that
keeps an API key out of every log line."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Protocol

import httpx

from services.market.importers.providers import ProviderBar, ProviderClient, ProviderError

if TYPE_CHECKING:
    from services.market.config import MarketSettings

DEFAULT_BASE_URLS = {
    "polygon": "https://api.polygon.io",
    "tiingo": "https://api.tiingo.com",
    "alphavantage": "https://www.alphavantage.co",
}


class ProviderAnswerError(ProviderError):
    """The provider answered with one of its documented error bodies (bad key, premium
    endpoint, malformed request): retrying will not help."""


@dataclass(frozen=True)
class ProviderSplit:
    ticker: str
    ex_date: date
    ratio: float  # new shares per old share: 4.0 for a 4-for-1, 0.1 for a 1-for-10


@dataclass(frozen=True)
class ProviderDividend:
    ticker: str
    ex_date: date
    amount: float  # cash per share, in the security's currency


@dataclass
class SessionData:
    """What a provider returned for a range of sessions (only the tickers asked for)."""

    bars: list[ProviderBar] = field(default_factory=list)
    splits: list[ProviderSplit] = field(default_factory=list)
    dividends: list[ProviderDividend] = field(default_factory=list)
    unknown_tickers: list[str] = field(default_factory=list)  # the provider does not know them

    def days(self) -> set[date]:
        return {b.day for b in self.bars}


class SyncProvider(Protocol):
    """A provider of end-of-day data for the sync."""

    name: str

    async def fetch(self, start: date, end: date, tickers: Collection[str]) -> SessionData:
        """Bars, splits and dividends of ``tickers`` for the sessions ``start``..``end``."""
        ...


def make_provider(settings: MarketSettings, http: httpx.AsyncClient) -> SyncProvider | None:
    """The configured provider (``MARKET_PROVIDER``), or None."""
    if settings.provider == "none":
        return None
    if settings.provider_api_key is None:
        raise ValueError(f"MARKET_PROVIDER={settings.provider} needs MARKET_PROVIDER_API_KEY")
    key = settings.provider_api_key.get_secret_value()
    base = settings.provider_base_url or DEFAULT_BASE_URLS[settings.provider]
    client = ProviderClient(
        http,
        concurrency=settings.provider_concurrency,
        max_attempts=settings.provider_max_attempts,
        max_backoff=settings.provider_max_backoff,
    )
    if settings.provider == "polygon":
        from services.market.providers.polygon import PolygonSync

        return PolygonSync(client, api_key=key, base_url=base)
    if settings.provider == "tiingo":
        from services.market.providers.tiingo import TiingoSync

        return TiingoSync(client, api_key=key, base_url=base)
    from services.market.providers.alphavantage import AlphaVantageSync

    return AlphaVantageSync(
        client, api_key=key, base_url=base, adjusted=settings.alphavantage_adjusted
    )


class _Redact(logging.Filter):
    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret in message:
            record.msg = message.replace(self.secret, "***")
            record.args = None
        return True


def redact_secret(secret: str) -> logging.Filter:
    """Install a filter that masks ``secret`` in every record of the loggers that see
    provider traffic (httpx logs each request's URL at INFO, and Alpha Vantage takes its key
    only in the query string); returns it, for :func:`remove_redaction`."""
    guard = _Redact(secret)
    for logger in _guarded():
        logger.addFilter(guard)
    for handler in logging.getLogger().handlers:  # records of child loggers too
        handler.addFilter(guard)
    return guard


def remove_redaction(guard: logging.Filter) -> None:
    for logger in _guarded():
        logger.removeFilter(guard)
    for handler in logging.getLogger().handlers:
        handler.removeFilter(guard)


def _guarded() -> list[logging.Logger]:
    names = ("httpx", "httpcore", "services.market.providers", "services.market.sync")
    return [logging.getLogger(name) for name in names]
