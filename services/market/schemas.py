"""API models of the market service (separate from rows and domain values).

Hot routes encode with orjson straight from these models' ``model_dump`` (or from the
dicts the domain builds in the same shape) and cache the bytes; the models document the
shapes in OpenAPI.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.market.domain import SORTABLE, TICKER_PATTERN, Quote, Security
from shared.inputs import FiniteFloat
from shared.pagination import CursorCodec, CursorPosition

STOCK_FIELDS = (
    "ticker",
    "name",
    "exchange",
    "sector",
    "industry",
    "status",
    "last_price",
    "previous_close",
    "change",
    "change_percent",
    "volume",
    "market_cap",
    "updated_at",
    "data_source",
)


def _market_cap(security: Security, quote: Quote | None) -> float | None:
    if quote is None or not security.shares_outstanding:
        return None
    return round(quote.price * security.shares_outstanding, 2)


class StockSummary(BaseModel):
    ticker: str
    name: str
    exchange: str
    sector: str
    industry: str
    status: str
    last_price: float | None
    previous_close: float | None
    change: float | None
    change_percent: float | None
    volume: int | None
    market_cap: float | None
    updated_at: datetime | None
    data_source: str

    @classmethod
    def of(cls, security: Security, quote: Quote | None) -> StockSummary:
        return cls(
            ticker=security.ticker,
            name=security.name,
            exchange=security.exchange,
            sector=security.sector,
            industry=security.industry,
            status=security.status,
            last_price=quote.price if quote else None,
            previous_close=quote.previous_close if quote else None,
            change=quote.change if quote else None,
            change_percent=quote.change_percent if quote else None,
            volume=quote.volume if quote else None,
            market_cap=_market_cap(security, quote),
            updated_at=quote.updated_at if quote else None,
            data_source=security.data_source,
        )


class StockPage(BaseModel):
    items: list[dict[str, Any]] = Field(
        description="StockSummary objects (only the requested `fields` when given)"
    )
    next_cursor: str | None


class StockDetail(BaseModel):
    ticker: str
    name: str
    exchange: str
    sector: str
    industry: str
    currency: str
    status: str
    listed_on: date | None
    delisted_on: date | None
    shares_outstanding: int | None
    market_cap: float | None
    last_price: float | None
    previous_close: float | None
    change: float | None
    change_percent: float | None
    day_open: float | None
    day_high: float | None
    day_low: float | None
    volume: int | None
    updated_at: datetime | None
    data_source: str

    @classmethod
    def of(cls, security: Security, quote: Quote | None) -> StockDetail:
        return cls(
            ticker=security.ticker,
            name=security.name,
            exchange=security.exchange,
            sector=security.sector,
            industry=security.industry,
            currency=security.currency,
            status=security.status,
            listed_on=security.listed_on,
            delisted_on=security.delisted_on,
            shares_outstanding=security.shares_outstanding,
            market_cap=_market_cap(security, quote),
            last_price=quote.price if quote else None,
            previous_close=quote.previous_close if quote else None,
            change=quote.change if quote else None,
            change_percent=quote.change_percent if quote else None,
            day_open=quote.day_open if quote else None,
            day_high=quote.day_high if quote else None,
            day_low=quote.day_low if quote else None,
            volume=quote.volume if quote else None,
            updated_at=quote.updated_at if quote else None,
            data_source=security.data_source,
        )


Day = date  # PriceBar has a field named "date"


class PriceBar(BaseModel):
    date: Day = Field(description="The session (daily) or the period's first day")
    open: float
    high: float
    low: float
    close: float
    volume: float = Field(description="Shares; split-adjusted when `adjusted`")
    last_day: Day | None = Field(None, description="Weekly/monthly: the period's last session")


class PriceHistory(BaseModel):
    ticker: str
    interval: str
    adjusted: bool
    start: date
    end: date
    data_source: str
    bars: list[PriceBar]


class QuoteOut(BaseModel):
    """The tick / quote shape (``market.tick.<TICKER>`` and ``market.rpc.quotes`` too)."""

    ticker: str
    price: float
    previous_close: float
    change: float
    change_percent: float
    volume: int
    ts: int = Field(description="Epoch milliseconds (UTC)")


class QuoteSnapshot(BaseModel):
    as_of: int
    count: int
    quotes: list[QuoteOut]


class Indicator(BaseModel):
    model_config = ConfigDict(extra="allow")


class Analysis(BaseModel):
    ticker: str
    name: str
    sector: str
    as_of: date | None
    last_close: float | None
    live_price: float | None
    adjusted: bool = True
    history: Indicator = Field(description="The adjusted history the indicators run over")
    returns: dict[str, float | None] = Field(description="Fractions over 1d 1w 1m 3m 6m ytd 1y")
    moving_averages: list[Indicator]
    rsi: Indicator
    macd: Indicator
    bollinger_bands: Indicator
    atr: Indicator
    volatility: Indicator
    max_drawdown: Indicator
    beta: Indicator
    sharpe_ratio: Indicator
    sortino_ratio: Indicator
    range_52w: Indicator
    relative_strength: Indicator
    average_volume: Indicator


class ModelFactor(BaseModel):
    key: str
    value: float | None = Field(description="The factor's raw value (None: not computable)")
    z_score: float = Field(description="Cross-sectional z-score within the run's universe")
    contribution: float = Field(description="Weight x z-score: its part of the score")
    percentile: float | None


class ModelRecommendation(BaseModel):
    """The model's view of the stock: its call in the latest live recommendation run, as
    the recommendations context published it (``RecommendationResponse``'s fields, with
    the score and its factor contributions)."""

    run_id: UUID
    recommendation_id: UUID
    as_of: date = Field(description="The last session whose data the run used")
    generated_at: datetime
    model_version: str
    action: Literal["BUY", "HOLD", "SELL"]
    confidence: float = Field(ge=0, le=1)
    score: float
    target_price: float | None
    price_at_call: float
    horizon_days: int
    factors: list[ModelFactor] = Field(description="By absolute contribution, largest first")
    thesis: str
    risk_factors: list[str]
    methodology_disclosure: str
    data_sources: list[str]


class AnalysisWithModel(Analysis):
    """``/stocks/{ticker}/analysis?include_ml=true``: the analysis and the model's view."""

    ml: ModelRecommendation | None = Field(
        description="The latest live run's call on the stock; null when there is none"
    )
    ml_reason: str | None = Field(description="Why ``ml`` is null (null when it is not)")


class Overview(BaseModel):
    as_of: date | None
    breadth: dict[str, int]
    index: dict[str, Any]
    top_gainers: list[dict[str, Any]]
    top_losers: list[dict[str, Any]]
    most_active: list[dict[str, Any]]
    new_52w_highs: dict[str, Any]
    new_52w_lows: dict[str, Any]


class SectorPerformance(BaseModel):
    sector: str
    securities: int
    market_cap: float
    performance_percent: dict[str, float | None] = Field(
        description="Cap-weighted price return by period: the change of the sector's market"
        " value, share counts held at today's (see `methodology`)"
    )
    equal_weighted_percent: dict[str, float | None] = Field(
        description="Equal-weighted mean of the members' price returns by period"
    )
    total_return_percent: dict[str, float | None] = Field(
        description="Cap-weighted total return by period (dividends reinvested)"
    )
    breadth: dict[str, int]
    leaders: list[dict[str, Any]]
    laggards: list[dict[str, Any]]


class Sectors(BaseModel):
    as_of: date | None
    methodology: str
    sectors: list[SectorPerformance]


class IndexLevel(BaseModel):
    date: Day
    price_return: float = Field(description="Price-return level (base 1000)")
    total_return: float = Field(description="Total-return level, dividends reinvested")
    constituents: int


class IndexHistory(BaseModel):
    name: str
    base: float
    methodology: str
    start: date | None
    end: date | None
    levels: list[IndexLevel]


class MarketStatus(BaseModel):
    storage: str
    securities: int
    universe_load: dict[str, Any] | None
    feed: dict[str, Any] | None


class RejectedRow(BaseModel):
    line: int
    ticker: str | None
    date: str | None
    reason: str


class ImportSummary(BaseModel):
    source: str
    rows: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    rejections: dict[str, int] = Field(description="Rejected rows by reason")
    rejected_rows: list[RejectedRow] = Field(description="The first 100 rejected rows")
    unknown_tickers: list[str]


_TEXT_SORTS = frozenset({"ticker", "name"})


class StockPosition(CursorPosition):
    """Where a page of ``/stocks`` ends: the sort it was made for (``-`` descending), the
    last item's sort value (text for ticker and name, a number otherwise) and ticker."""

    sort: str = Field(pattern=f"^-?({'|'.join(SORTABLE)})$")
    value: FiniteFloat | str
    ticker: str = Field(pattern=TICKER_PATTERN)

    @model_validator(mode="after")
    def _value_fits_the_sort(self) -> StockPosition:
        if (self.sort.lstrip("-") in _TEXT_SORTS) != isinstance(self.value, str):
            raise ValueError("the value does not fit the sort")
        return self


STOCKS_CURSOR = CursorCodec("market.stocks", StockPosition)
