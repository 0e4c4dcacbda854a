"""API models of the watchlists (separate from the rows and the domain's values)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.portfolio.schemas import Ticker
from services.portfolio.watchlists.domain import (
    MAX_TICKERS_PER_LIST,
    CallView,
    Line,
    QuoteView,
    Watchlist,
)
from shared.pagination import CursorCodec, CursorPosition


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


Name = Field(min_length=1, max_length=100)


class WatchlistCreate(_Input):
    name: str = Name
    tickers: list[Ticker] = Field(
        default_factory=list,
        max_length=MAX_TICKERS_PER_LIST,
        description="In the order to show them; each once; market must have a quote for each.",
    )


class WatchlistRename(_Input):
    name: str = Name


class WatchlistTickers(_Input):
    tickers: list[Ticker] = Field(
        max_length=MAX_TICKERS_PER_LIST,
        description="The whole list in its new order (to reorder, the same tickers).",
    )


class WatchlistTickerAdd(_Input):
    ticker: Ticker
    position: int | None = Field(
        default=None,
        ge=0,
        description="Where it goes (0: first); default and past the end: last.",
    )


class WatchlistOut(BaseModel):
    id: UUID
    name: str
    tickers: list[str]
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, w: Watchlist) -> WatchlistOut:
        return cls(
            id=w.id,
            name=w.name,
            tickers=list(w.tickers),
            version=w.version,
            created_at=w.created_at,
            updated_at=w.updated_at,
        )


class WatchlistPage(BaseModel):
    items: list[WatchlistOut]
    next_cursor: str | None


class QuoteOut(BaseModel):
    price: float
    previous_close: float | None
    change: float | None
    change_percent: float | None
    volume: int | None
    as_of: datetime
    sector: str | None

    @classmethod
    def of(cls, q: QuoteView) -> QuoteOut:
        return cls.model_validate(q, from_attributes=True)


class RecommendationOut(BaseModel):
    id: UUID
    action: Literal["BUY", "HOLD", "SELL"]
    confidence: float
    target_price: float | None
    price_at_call: float | None
    horizon_days: int | None
    upside: float | None = Field(
        description="target_price / the quote's price - 1 (null without either)."
    )

    @classmethod
    def of(cls, c: CallView) -> RecommendationOut:
        return cls.model_validate(c, from_attributes=True)


class WatchlistLine(BaseModel):
    ticker: str
    status: Literal["quoted", "unknown", "unavailable"] = Field(
        description="quoted: market has a quote; unknown: market answered without one;"
        " unavailable: market did not answer."
    )
    quote: QuoteOut | None
    recommendation: RecommendationOut | None = Field(
        description="The ticker's call in the latest live run; null when it has none or"
        " recommendations did not answer (see recommendations_available)."
    )

    @classmethod
    def of(cls, line: Line) -> WatchlistLine:
        return cls(
            ticker=line.ticker,
            status=line.status,
            quote=QuoteOut.of(line.quote) if line.quote else None,
            recommendation=RecommendationOut.of(line.recommendation)
            if line.recommendation
            else None,
        )


class WatchlistView(WatchlistOut):
    """A list with each ticker's live quote and latest recommendation."""

    items: list[WatchlistLine]
    quotes_available: bool
    quotes_note: str | None
    prices_as_of: datetime | None = Field(description="The oldest quote shown.")
    recommendations_available: bool
    recommendations_note: str | None
    recommendation_run_id: UUID | None
    recommendations_as_of: date | None
    recommendations_generated_at: datetime | None


class WatchlistPagePosition(CursorPosition):
    created_at: datetime
    id: UUID


WATCHLISTS_CURSOR = CursorCodec("portfolio.watchlists", WatchlistPagePosition)
