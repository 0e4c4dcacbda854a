"""API models of the market service (separate from rows and domain values)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from services.market.domain import Quote, Security


class StockSummary(BaseModel):
    ticker: str
    name: str
    exchange: str
    sector: str
    industry: str
    last_price: float | None
    change_percent: float | None
    volume: int | None

    @classmethod
    def of(cls, security: Security, quote: Quote | None) -> StockSummary:
        return cls(
            ticker=security.ticker,
            name=security.name,
            exchange=security.exchange,
            sector=security.sector,
            industry=security.industry,
            last_price=quote.price if quote else None,
            change_percent=quote.change_percent if quote else None,
            volume=quote.volume if quote else None,
        )


class StockPage(BaseModel):
    items: list[StockSummary]
    next_cursor: str | None


class StockDetail(BaseModel):
    ticker: str
    name: str
    exchange: str
    sector: str
    industry: str
    currency: str
    status: str
    shares_outstanding: int | None
    market_cap: float | None
    last_price: float | None
    previous_close: float | None
    change: float | None
    change_percent: float | None
    volume: int | None
    updated_at: datetime | None
    data_source: str

    @classmethod
    def of(cls, security: Security, quote: Quote | None) -> StockDetail:
        market_cap = None
        if quote is not None and security.shares_outstanding:
            market_cap = round(quote.price * security.shares_outstanding, 2)
        return cls(
            ticker=security.ticker,
            name=security.name,
            exchange=security.exchange,
            sector=security.sector,
            industry=security.industry,
            currency=security.currency,
            status=security.status,
            shares_outstanding=security.shares_outstanding,
            market_cap=market_cap,
            last_price=quote.price if quote else None,
            previous_close=quote.previous_close if quote else None,
            change=quote.change if quote else None,
            change_percent=quote.change_percent if quote else None,
            volume=quote.volume if quote else None,
            updated_at=quote.updated_at if quote else None,
            data_source=security.data_source,
        )
