"""Pure market logic: ticker rules, securities and quotes, and (in the modules of this
package) the trading calendar, the universe simulator, corporate-action adjustment,
technical indicators, bar validation and universe statistics. No I/O anywhere here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

# 1-5 letters, optionally a one-letter share class after "." or "-" (BRK.B, BF-B).
TICKER_PATTERN = r"^[A-Za-z]{1,5}([.-][A-Za-z])?$"
_TICKER = re.compile(TICKER_PATTERN)


def normalise_ticker(raw: str) -> str | None:
    """The canonical (upper-case) ticker, or None if ``raw`` is not a valid symbol."""
    return raw.upper() if _TICKER.match(raw) else None


@dataclass(frozen=True)
class Security:
    ticker: str
    name: str
    exchange: str
    sector: str
    industry: str
    currency: str
    status: str
    shares_outstanding: int | None
    data_source: str
    security_id: int | None = None
    listed_on: date | None = None
    delisted_on: date | None = None


@dataclass(frozen=True)
class Quote:
    ticker: str
    price: float
    previous_close: float | None
    volume: int
    updated_at: datetime
    day_open: float | None = None
    day_high: float | None = None
    day_low: float | None = None

    @property
    def change(self) -> float | None:
        if self.previous_close is None:
            return None
        return round(self.price - self.previous_close, 4)

    @property
    def change_percent(self) -> float | None:
        if not self.previous_close:
            return None
        return round((self.price / self.previous_close - 1.0) * 100.0, 4)


# What /stocks sorts and filters by (the repository maps each to its SQL expression).
SORTABLE = (
    "ticker",
    "name",
    "price",
    "change_percent",
    "volume",
    "market_cap",
    "pe_ratio",
    "dividend_yield",
)
RANGE_FILTERS = ("price", "change_percent", "volume", "market_cap", "pe_ratio", "dividend_yield")


@dataclass(frozen=True)
class StockFilter:
    sector: str | None = None
    industry: str | None = None
    exchange: str | None = None
    search: str | None = None
    ranges: tuple[tuple[str, float | None, float | None], ...] = ()  # (name, min, max)
