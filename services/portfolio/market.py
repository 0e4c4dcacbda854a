"""What we ask the market context over NATS, and our own model of its replies.

We never import market's package (its publisher models live in
``services/market/events.py``): these classes are our view of the fields we read, unknown
fields ignored so market may add some. ``tests/test_contract_portfolio_market.py`` checks
them against market's models.

- ``market.rpc.quotes``: :class:`QuotesRequest` -> :class:`QuotesReply` (latest quotes).
  ``sector`` is read if market sends it (it does not yet); without it a position's sector
  is unclassified.

Prices arrive as JSON floats rounded to 4 decimals by market; they become ``Decimal``
through their shortest decimal form (``str``), so 187.23 is exactly 187.23.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from services.portfolio.domain import Quote, price
from shared.errors import AppError
from shared.messaging import Bus

QUOTES_RPC = "market.rpc.quotes"


class QuotesRequest(BaseModel):
    tickers: list[str]


class MarketQuote(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticker: str
    price: float
    ts: int  # epoch milliseconds (UTC)
    sector: str | None = None


class QuotesReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    quotes: list[MarketQuote]
    missing: list[str] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class QuoteBook:
    """The quotes market gave; ``available`` is False when market did not answer."""

    quotes: dict[str, Quote]
    available: bool = True
    problem: str | None = None


class MarketQuotes:
    """Latest quotes from the market context (request/reply on the request's bus)."""

    def __init__(self, bus: Bus, *, timeout: float) -> None:
        self._bus = bus
        self._timeout = timeout

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
