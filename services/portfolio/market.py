"""What we ask the market context over NATS, and our own model of its replies.

We never import market's package (its publisher models live in
``services/market/events.py``): these classes are our view of the fields we read, unknown
fields ignored so market may add some. ``tests/test_contract_portfolio_market.py`` checks
them against market's models.

- ``market.rpc.quotes``: :class:`QuotesRequest` -> :class:`QuotesReply` (latest quotes,
  each with its security's sector; without one a position's sector is unclassified).
- ``market.rpc.history``: :class:`HistoryRequest` -> :class:`HistoryReply`, paged by
  ``next_cursor``; we ask for *unadjusted* closes (``adjusted: false``), because the
  ledger's SPLIT entries change quantities on their day as raw prices change then.
- ``market.rpc.index``: :class:`IndexRequest` -> :class:`IndexReply`, the universe index's
  daily levels; we read the total-return variant (performance's benchmark).

Prices arrive as JSON floats rounded to 4 decimals by market; they become ``Decimal``
through their shortest decimal form (``str``), so 187.23 is exactly 187.23.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from services.portfolio.domain import Quote, price
from services.portfolio.domain.performance import IndexLevels
from shared.errors import AppError
from shared.messaging import Bus

QUOTES_RPC = "market.rpc.quotes"
HISTORY_RPC = "market.rpc.history"
INDEX_RPC = "market.rpc.index"
# A portfolio's history needs few pages (each is half a NATS payload); more is a bug.
MAX_HISTORY_PAGES = 200


class QuotesRequest(BaseModel):
    tickers: list[str]


class MarketQuote(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticker: str
    price: float
    ts: int  # epoch milliseconds (UTC)
    sector: str | None = None
    # What a watchlist shows besides the price (the valuation reads none of them).
    previous_close: float | None = None
    change: float | None = None
    change_percent: float | None = None
    volume: int | None = None


class QuotesReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    quotes: list[MarketQuote]
    missing: list[str] = Field(default_factory=list)


class HistoryRequest(BaseModel):
    tickers: list[str]
    start: date
    end: date
    adjusted: bool = False
    cursor: int | None = None


class CloseSeries(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticker: str
    dates: list[date]
    closes: list[float]


class HistoryReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    series: list[CloseSeries]
    missing: list[str] = Field(default_factory=list)
    next_cursor: int | None = None


class IndexRequest(BaseModel):
    start: date
    end: date


class IndexReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    dates: list[date]
    total_return: list[float]  # levels, dividends reinvested


@dataclass(frozen=True, slots=True)
class IndexBook:
    """The total-return index's levels; ``available`` is False when market did not
    answer (then ``levels`` is None)."""

    levels: IndexLevels | None
    available: bool = True
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class CloseBook:
    """Each ticker's daily closes, oldest first; ``available`` is False when market did
    not answer (then ``closes`` is empty)."""

    closes: dict[str, list[tuple[date, Decimal]]]
    missing: list[str]
    available: bool = True
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class QuoteBook:
    """The quotes market gave; ``available`` is False when market did not answer."""

    quotes: dict[str, Quote]
    available: bool = True
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class QuoteSnapshot:
    """Market's quotes as it sent them (the day's change included) and the tickers it
    has no quote for; ``available`` is False when market did not answer."""

    quotes: dict[str, MarketQuote]
    missing: list[str]
    available: bool = True
    problem: str | None = None


class MarketQuotes:
    """Latest quotes and daily closes from the market context (request/reply on the
    part's bus)."""

    def __init__(self, bus: Bus, *, timeout: float, history_timeout: float = 10.0) -> None:
        self._bus = bus
        self._timeout = timeout
        self._history_timeout = history_timeout

    async def latest(self, tickers: Iterable[str]) -> QuoteBook:
        """The latest quote of each ticker market knows. Never raises for market being
        away: a valuation without prices is still an answer (``available=False``)."""
        wanted = sorted(set(tickers))
        if not wanted:
            return QuoteBook({})
        try:
            reply = await self._bus.request(
                QUOTES_RPC, QuotesRequest(tickers=wanted), QuotesReply, timeout=self._timeout
            )
        except AppError as exc:
            return QuoteBook({}, available=False, problem=exc.message)
        return QuoteBook(
            {
                q.ticker: Quote(
                    price=price(Decimal(str(q.price))),
                    as_of=datetime.fromtimestamp(q.ts / 1000, tz=UTC),
                    sector=q.sector,
                )
                for q in reply.quotes
            }
        )

    async def snapshot(self, tickers: Iterable[str]) -> QuoteSnapshot:
        """The latest quotes as market sent them, and which tickers it has none for.
        Never raises for market being away (``available=False``)."""
        wanted = sorted(set(tickers))
        if not wanted:
            return QuoteSnapshot({}, [])
        try:
            reply = await self._bus.request(
                QUOTES_RPC, QuotesRequest(tickers=wanted), QuotesReply, timeout=self._timeout
            )
        except AppError as exc:
            return QuoteSnapshot({}, [], available=False, problem=exc.message)
        return QuoteSnapshot({q.ticker: q for q in reply.quotes}, sorted(reply.missing))

    async def closes(
        self, tickers: Iterable[str], start: date, end: date, *, adjusted: bool = False
    ) -> CloseBook:
        """Daily closes of ``tickers`` between ``start`` and ``end``: unadjusted (the
        ledger's replay), or ``adjusted`` for splits and dividends (the x-ray's and the
        optimiser's returns). Never raises for market being away (``available=False``)."""
        wanted = sorted(set(tickers))
        if not wanted:
            return CloseBook({}, [])
        found: dict[str, list[tuple[date, Decimal]]] = {}
        missing: list[str] = []
        cursor: int | None = None
        try:
            for _ in range(MAX_HISTORY_PAGES):
                request = HistoryRequest(
                    tickers=wanted, start=start, end=end, adjusted=adjusted, cursor=cursor
                )
                reply = await self._bus.request(
                    HISTORY_RPC, request, HistoryReply, timeout=self._history_timeout
                )
                for item in reply.series:
                    found[item.ticker] = [
                        (day, Decimal(str(close)))
                        for day, close in zip(item.dates, item.closes, strict=True)
                    ]
                missing += reply.missing
                cursor = reply.next_cursor
                if cursor is None:
                    break
        except AppError as exc:
            return CloseBook({}, wanted, available=False, problem=exc.message)
        return CloseBook(found, missing)

    async def index(self, start: date, end: date) -> IndexBook:
        """The total-return index's levels between ``start`` and ``end``. Never raises
        for market being away (``available=False``)."""
        try:
            reply = await self._bus.request(
                INDEX_RPC,
                IndexRequest(start=start, end=end),
                IndexReply,
                timeout=self._history_timeout,
            )
        except AppError as exc:
            return IndexBook(None, available=False, problem=exc.message)
        return IndexBook(IndexLevels(reply.dates, reply.total_return))
