"""API models of the portfolio service. Money, prices and quantities are exact decimals,
sent and received as JSON strings (numbers are accepted on input and read exactly)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
)

from services.portfolio.domain import MONEY, Entry, Portfolio, Position, ValuedPosition, price
from shared.pagination import CursorCodec, CursorPosition

TICKER_PATTERN = r"^[A-Z]{1,5}([.-][A-Z])?$"


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


def _plain(value: Decimal) -> str:
    """A quantity without trailing zeros or an exponent: ``10``, ``0.5``."""
    text = format(value.normalize(), "f")
    return text


def _money(value: Decimal) -> str:
    """Money with its 4 decimal places always written: ``0.0000``, ``12.5000``."""
    return str(value.quantize(MONEY))


Money = Annotated[Decimal, PlainSerializer(_money, return_type=str)]
Ticker = Annotated[str, BeforeValidator(_upper), Field(pattern=TICKER_PATTERN)]
MoneyIn = Annotated[Decimal, Field(gt=0, max_digits=20, decimal_places=4)]
FeeAmount = Annotated[Decimal, Field(ge=0, max_digits=20, decimal_places=4)]
PriceIn = Annotated[Decimal, Field(ge=0, max_digits=20, decimal_places=6)]
QuantityIn = Annotated[Decimal, Field(gt=0, max_digits=28, decimal_places=10)]
Quantity = Annotated[Decimal, PlainSerializer(_plain, return_type=str)]
Note = Annotated[str, Field(max_length=500)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PortfolioCreate(_Input):
    name: str = Field(min_length=1, max_length=100)
    base_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    cash: Decimal = Field(
        default=Decimal("0"),
        ge=0,
        max_digits=20,
        decimal_places=4,
        description="Opening cash, recorded as a DEPOSIT.",
    )


class PortfolioUpdate(_Input):
    name: str = Field(min_length=1, max_length=100)


class PositionCreate(_Input):
    """A BUY: at ``price`` if given, else at market's latest quote."""

    ticker: Ticker
    quantity: QuantityIn
    price: PriceIn | None = None
    fee: FeeAmount = Decimal("0")
    executed_at: datetime | None = Field(None, description="Default: now. Not in the future.")
    note: Note | None = None


class TradeIn(_Input):
    kind: Literal["BUY", "SELL"]
    ticker: Ticker
    quantity: QuantityIn
    price: PriceIn
    fee: FeeAmount = Decimal("0")
    executed_at: datetime | None = None
    note: Note | None = None


class CashIn(_Input):
    kind: Literal["DEPOSIT", "WITHDRAWAL"]
    amount: MoneyIn
    executed_at: datetime | None = None
    note: Note | None = None


class DividendIn(_Input):
    kind: Literal["DIVIDEND"]
    ticker: Ticker
    amount: MoneyIn = Field(description="Cash received (net of withholding).")
    executed_at: datetime | None = None
    note: Note | None = None


class AccountFeeIn(_Input):
    kind: Literal["FEE"]
    amount: MoneyIn
    ticker: Ticker | None = None
    executed_at: datetime | None = None
    note: Note | None = None


class SplitIn(_Input):
    kind: Literal["SPLIT"]
    ticker: Ticker
    split_to: int = Field(ge=1, le=1_000_000, description="New shares ...")
    split_from: int = Field(ge=1, le=1_000_000, description="... for this many held.")
    executed_at: datetime | None = None
    note: Note | None = None


TransactionCreate = Annotated[
    TradeIn | CashIn | DividendIn | AccountFeeIn | SplitIn, Field(discriminator="kind")
]


class ReversalCreate(_Input):
    note: Note | None = None


# --- outputs ----------------------------------------------------------------------------


class PortfolioOut(BaseModel):
    id: UUID
    name: str
    base_currency: str
    cash: Money
    version: int
    is_default: bool
    created_at: datetime

    @classmethod
    def of(cls, portfolio: Portfolio) -> PortfolioOut:
        return cls.model_validate(portfolio, from_attributes=True)


class PortfolioPagePosition(CursorPosition):
    """Where a page of portfolios ends (oldest first): the last one's creation and id."""

    created_at: datetime
    id: UUID


PORTFOLIOS_CURSOR = CursorCodec("portfolio.portfolios", PortfolioPagePosition)


class TransactionPagePosition(CursorPosition):
    """Where a page of the ledger ends (newest first): the last entry's time and seq."""

    executed_at: datetime
    seq: int = Field(ge=1, le=2**63 - 1)


TRANSACTIONS_CURSOR = CursorCodec("portfolio.transactions", TransactionPagePosition)


class PortfolioPage(BaseModel):
    items: list[PortfolioOut]
    next_cursor: str | None


class TransactionOut(BaseModel):
    id: UUID
    kind: str
    executed_at: datetime
    amount: Money = Field(description="Signed effect on cash: in > 0 > out.")
    ticker: str | None
    quantity: Quantity | None
    price: Decimal | None
    fee: Money
    split_to: int | None
    split_from: int | None
    reverses: UUID | None
    note: str | None

    @classmethod
    def of(cls, entry: Entry) -> TransactionOut:
        return cls(
            id=entry.id,
            kind=entry.kind.value,
            executed_at=entry.executed_at,
            amount=entry.amount,
            ticker=entry.ticker,
            quantity=entry.quantity,
            price=entry.price,
            fee=entry.fee,
            split_to=entry.split_to,
            split_from=entry.split_from,
            reverses=entry.reverses,
            note=entry.note,
        )


class TransactionPage(BaseModel):
    items: list[TransactionOut]
    next_cursor: str | None


class Recorded(BaseModel):
    """What a change wrote: the ledger row and the portfolio after it."""

    transaction: TransactionOut
    portfolio: PortfolioOut


class LotOut(BaseModel):
    transaction_id: UUID
    opened_at: datetime
    quantity: Quantity
    cost: Money


class SellFlagOut(BaseModel):
    """The recommendation that turned a holding SELL (an alert was raised for it)."""

    recommendation_id: UUID
    run_id: UUID
    confidence: float
    flagged_at: datetime


class PositionOut(BaseModel):
    ticker: str
    quantity: Quantity
    average_cost: Decimal | None
    cost_basis: Money
    price: Decimal | None
    price_as_of: datetime | None
    market_value: Money | None
    unrealised_pnl: Money | None
    realised_pnl: Money
    dividends: Money
    weight: Decimal | None = Field(description="Share of total value, a fraction (6 dp).")
    sector: str | None
    lots: list[LotOut] = Field(description="FIFO tax lots, oldest first.")
    sell_flag: SellFlagOut | None = Field(
        None,
        description="Set while the latest recommendation on the ticker is a SELL that came"
        " (turned SELL) while the position was held; null otherwise.",
    )

    @classmethod
    def of(cls, valued: ValuedPosition) -> PositionOut:
        # model_construct: every value comes from the domain, already of the right type;
        # validating 200 positions and their lots again costs more than the rest of a read.
        p, quote = valued.position, valued.quote
        quantity = valued.quantity
        return cls.model_construct(
            ticker=p.ticker,
            quantity=quantity,
            average_cost=price(valued.cost_basis / quantity) if quantity else None,
            cost_basis=valued.cost_basis,
            price=quote.price if quote else None,
            price_as_of=quote.as_of if quote else None,
            market_value=valued.market_value,
            unrealised_pnl=valued.unrealised_pnl,
            realised_pnl=p.realised_pnl,
            dividends=p.dividends,
            weight=valued.weight,
            sector=quote.sector if quote else None,
            lots=[
                LotOut.model_construct(
                    transaction_id=lot.entry_id,
                    opened_at=lot.opened_at,
                    quantity=lot.quantity,
                    cost=lot.cost,
                )
                for lot in p.lots
            ],
        )


class ClosedPositionOut(BaseModel):
    ticker: str
    realised_pnl: Money
    dividends: Money

    @classmethod
    def of(cls, p: Position) -> ClosedPositionOut:
        return cls(ticker=p.ticker, realised_pnl=p.realised_pnl, dividends=p.dividends)


class SectorWeight(BaseModel):
    sector: str
    weight: Decimal


class PortfolioValuation(PortfolioOut):
    """A portfolio with its positions valued at market's latest quotes."""

    positions: list[PositionOut]
    closed_positions: list[ClosedPositionOut]
    market_value: Money = Field(description="Priced positions only.")
    total_value: Money = Field(description="cash + market_value")
    cost_basis: Money
    unrealised_pnl: Money
    realised_pnl: Money
    dividends: Money
    deposits: Money
    withdrawals: Money
    fees: Money = Field(description="FEE entries; trade fees are in cost and proceeds.")
    cash_weight: Decimal | None
    sectors: list[SectorWeight]
    prices_as_of: datetime | None = Field(description="The oldest quote used.")
    prices_available: bool = Field(description="False when market did not answer.")
    unpriced: list[str] = Field(description="Open positions without a quote.")


# --- performance ----------------------------------------------------------------------------

TWR_METHOD = (
    "time-weighted return: daily returns chain-linked, each day's flows (deposits,"
    " withdrawals) counted at the start of the day; annualised only over a year or more"
)
MWR_METHOD = (
    "money-weighted return: XIRR, the annual rate that discounts the period's starting"
    " value, its deposits and withdrawals and its ending value to zero (actual/365);"
    " over_period compounds it over the period's length"
)
VOLATILITY_METHOD = "sample standard deviation of the daily time-weighted returns x sqrt(252)"
DRAWDOWN_METHOD = "deepest fall of the time-weighted index from a previous peak"
BENCHMARK = "market-index-total-return"
BENCHMARK_METHOD = (
    "market's universe index, total-return variant (split-consistent market-value weights,"
    " dividends reinvested): its level on each day of the series is its last on or before"
    " that day, and its daily returns are chained over the days the portfolio had a return"
)
EXCESS_METHOD = "time-weighted return minus the benchmark's return over the same days"
BETA_METHOD = (
    "covariance of the portfolio's daily time-weighted returns with the benchmark's over the"
    " benchmark's variance, since inception (the days both have a return)"
)


class ReturnFigure(BaseModel):
    """A return as a fraction (0.0123 = 1.23 %), 8 decimal places; null when there is
    none (nothing invested, or no rate solves the flows)."""

    method: str
    value: Decimal | None
    annualised: Decimal | None = None
    over_period: Decimal | None = None


class PeriodPerformance(BaseModel):
    period: str = Field(description="1M, 3M, YTD, 1Y or INCEPTION")
    start: date = Field(description="The base day: returns grow from its closing value.")
    end: date
    available: bool
    note: str | None
    start_value: Money
    end_value: Money
    net_flows: Money = Field(description="Deposits - withdrawals in the period.")
    twr: ReturnFigure
    mwr: ReturnFigure
    benchmark_return: ReturnFigure = Field(
        description="The benchmark's return over the period's days (null: no index level)."
    )
    excess_return: ReturnFigure


class SeriesPoint(BaseModel):
    date: date
    value: Money
    cash: Money
    net_flow: Money
    twr_index: Decimal = Field(description="Growth of 1 invested at inception.")


class Performance(BaseModel):
    portfolio_id: UUID
    base_currency: str
    as_of: date
    periods: list[PeriodPerformance]
    volatility: ReturnFigure
    max_drawdown: ReturnFigure
    benchmark: str = Field(description="What benchmark_return, excess_return and beta are against.")
    benchmark_note: str | None = Field(
        description="Why the benchmark figures are null, when they are (else null)."
    )
    beta: ReturnFigure
    prices_available: bool = Field(description="False when market's history did not answer.")
    missing_history: list[str] = Field(
        description="Tickers market has no closes for: valued at their last trade price."
    )
    series: list[SeriesPoint] = Field(description="Daily value, oldest first.")


# --- rebalancing -----------------------------------------------------------------------------

WeightIn = Annotated[Decimal, Field(ge=0, le=1, max_digits=8, decimal_places=6)]


class ExplicitTarget(_Input):
    kind: Literal["explicit"]
    weights: dict[Ticker, WeightIn] = Field(
        description="Ticker -> fraction of total value, summing to at most 1; the rest is"
        " cash. Held tickers not named here are sold (unless excluded)."
    )

    @field_validator("weights")
    @classmethod
    def _at_most_everything(cls, weights: dict[str, Decimal]) -> dict[str, Decimal]:
        if sum(weights.values(), Decimal(0)) > 1:
            raise ValueError("the weights sum to more than 1")
        return weights


class EqualTarget(_Input):
    kind: Literal["equal"]
    tickers: list[Ticker] | None = Field(
        None, description="Default: the open positions that are not excluded."
    )


class RecommendationsTarget(_Input):
    kind: Literal["recommendations"]
    tickers: list[Ticker] | None = Field(
        None,
        description="Tickers to consider besides the open positions that are not excluded"
        " (e.g. BUY calls not held yet).",
    )
    buy_tilt: Decimal = Field(
        Decimal(1),
        ge=0,
        le=10,
        decimal_places=4,
        description="A BUY scores 1 + buy_tilt x confidence, a HOLD (or no call) 1, a SELL 0;"
        " targets are the scores over their sum.",
    )


class OptimisedTarget(_Input):
    kind: Literal["optimised"]
    method: Literal["min_variance", "risk_parity"]
    tickers: list[Ticker] | None = Field(
        None, description="Default: the open positions that are not excluded."
    )
    history_days: int = Field(
        365,
        ge=90,
        le=3650,
        description="Calendar days of daily returns (adjusted closes) the covariance is"
        " estimated on (Ledoit-Wolf shrinkage).",
    )


RebalanceTarget = Annotated[
    ExplicitTarget | EqualTarget | RecommendationsTarget | OptimisedTarget,
    Field(discriminator="kind"),
]


class RebalanceConstraints(_Input):
    cash_buffer: Decimal = Field(
        Decimal(0), ge=0, lt=1, decimal_places=6, description="Fraction of value kept in cash."
    )
    min_trade_value: FeeAmount = Field(Decimal(0), description="Smaller trades are dropped.")
    fractional: bool = Field(False, description="Fractional shares (6 places) or whole ones.")
    drift_band: Decimal = Field(
        Decimal(0),
        ge=0,
        le=1,
        decimal_places=6,
        description="A position this close to its target weight does not trade.",
    )
    max_turnover: Decimal | None = Field(
        None, gt=0, le=1, decimal_places=6, description="One-way: sum(|trades|) / 2V."
    )
    exclude: list[Ticker] = Field(default_factory=list, description="Neither bought nor sold.")
    fee_per_trade: FeeAmount = Field(Decimal(0), description="Recorded as each trade's fee.")
    cost_bps: Decimal = Field(
        Decimal(0), ge=0, le=10_000, decimal_places=2, description="Estimated spread, reported."
    )


LimitIn = Annotated[Decimal, Field(gt=0, le=1, max_digits=8, decimal_places=6)]


class XRayLimits(_Input):
    """Concentration limits of the x-ray; each defaults to the service's setting."""

    max_position_weight: LimitIn | None = None
    max_sector_weight: LimitIn | None = None


class RebalanceRequest(_Input):
    target: RebalanceTarget
    constraints: RebalanceConstraints = Field(default_factory=RebalanceConstraints)
    xray_limits: XRayLimits = Field(
        default_factory=XRayLimits, description="For the x-ray before and after."
    )
    apply: bool = Field(
        False,
        description="Record the trades (needs If-Match and Idempotency-Key); otherwise only"
        " propose them.",
    )


# --- risk x-ray ---------------------------------------------------------------------------

XRAY_VOLATILITY_METHOD = (
    "the current weights held constant over the window: sample standard deviation of"
    " sum(w_i x r_i) over the holdings' daily returns (adjusted closes, cash earning"
    " nothing) x sqrt(252)"
)
XRAY_BETA_METHOD = (
    "covariance of that constant-weight daily return with the market index's total-return"
    " daily return over the index's variance (the days both have one)"
)
XRAY_DRAWDOWN_METHOD = "deepest fall of that constant-weight series, compounded, from a peak"


class LimitsOut(BaseModel):
    max_position_weight: Decimal
    max_sector_weight: Decimal


class HoldingWeight(BaseModel):
    ticker: str
    weight: Decimal
    sector: str


class Breach(BaseModel):
    name: str = Field(description="The ticker or sector.")
    weight: Decimal
    limit: Decimal
    excess: Decimal = Field(description="weight - limit")


class RiskFigures(BaseModel):
    available: bool
    note: str | None
    start: date | None = Field(description="The first day with a return in the window.")
    end: date | None
    days: int = Field(description="Daily returns in the window.")
    volatility: ReturnFigure = Field(description="Annualised.")
    beta: ReturnFigure
    max_drawdown: ReturnFigure
    short_history: list[str] = Field(
        description="Holdings without a return on some days of the window (flat then)."
    )
    missing_history: list[str] = Field(
        description="Holdings market has no closes for (flat throughout)."
    )


class SellSignal(BaseModel):
    ticker: str
    weight: Decimal
    confidence: float
    recommendation_id: UUID


class SellSignals(BaseModel):
    available: bool = Field(description="False when recommendations did not answer.")
    note: str | None
    run_id: UUID | None = Field(description="The latest live run read (null: none yet).")
    as_of: date | None
    holdings: list[SellSignal] = Field(description="Holdings whose latest call is SELL.")


class XRay(BaseModel):
    total_value: Money
    cash_weight: Decimal
    limits: LimitsOut
    weights: list[HoldingWeight] = Field(description="Priced positions, heaviest first.")
    sectors: list[SectorWeight]
    largest_position: HoldingWeight | None
    effective_positions: Decimal | None = Field(
        description="(sum w)^2 / sum(w^2) over the positions: how many equal positions"
        " would be as concentrated."
    )
    positions_over_limit: list[Breach]
    sectors_over_limit: list[Breach] = Field(description="UNCLASSIFIED is never flagged.")
    risk: RiskFigures
    sell_signals: SellSignals


class PortfolioXRay(XRay):
    portfolio_id: UUID
    version: int
    prices_available: bool = Field(description="False when market's quotes did not answer.")
    prices_as_of: datetime | None
    unpriced: list[str] = Field(description="Open positions without a quote (left out).")


class ProposedTrade(BaseModel):
    ticker: str
    side: str
    quantity: Quantity
    price: Decimal
    value: Money
    fee: Money


class RebalanceLine(BaseModel):
    ticker: str
    target: Decimal | None = Field(description="After scaling; null when excluded.")
    weight_before: Decimal
    weight_after: Decimal
    quantity_before: Quantity
    quantity_after: Quantity
    tolerance: Decimal | None = Field(
        description="How far weight_after may be from target when nothing was scaled down."
    )


class RebalanceProposal(BaseModel):
    portfolio_id: UUID
    version: int = Field(description="The portfolio version the proposal is based on.")
    applied: bool
    trades: list[ProposedTrade] = Field(description="Sells first: they fund the buys.")
    lines: list[RebalanceLine]
    total_value: Money
    cash_before: Money
    cash_after: Money
    cash_weight_after: Decimal
    turnover: Decimal = Field(description="One-way: sum(|trade values|) / 2V.")
    estimated_cost: Money = Field(description="Fees plus the estimated spread.")
    scaled_targets: bool
    notes: list[str]
    prices_as_of: datetime | None
    transactions: list[TransactionOut] = Field(
        default_factory=list, description="The ledger rows written, when applied."
    )
    target_method: str | None = Field(None, description="How the targets were derived.")
    xray_before: XRay | None = Field(None, description="The risk x-ray of the holdings now.")
    xray_after: XRay | None = Field(
        None, description="The risk x-ray of the holdings the trades would leave."
    )


# --- impact preview ------------------------------------------------------------------------

IMPACT_RULE = (
    "SELL: the whole position is sold; BUY: the position is raised by `step` of total value"
    " (default 0.02), to at most the position limit and within cash, whole shares unless"
    " `fractional`; HOLD: nothing trades. At market's latest quotes; nothing is written."
)


class FollowedCall(BaseModel):
    id: UUID
    ticker: str
    action: str
    confidence: float
    run_id: UUID | None
    as_of: date | None


class ImpactPreview(BaseModel):
    portfolio_id: UUID
    version: int
    recommendation: FollowedCall
    rule: str
    trades: list[ProposedTrade]
    weight_before: Decimal
    weight_after: Decimal
    cash_before: Money
    cash_after: Money
    notes: list[str]
    prices_as_of: datetime | None
    xray_before: XRay
    xray_after: XRay
    written: bool = Field(False, description="Always false: a preview changes nothing.")


# --- CSV import -------------------------------------------------------------------------------


class ImportedRow(BaseModel):
    line: int = Field(description="The row's line in the file (the header is line 1).")
    status: Literal["imported", "duplicate", "skipped", "unsupported", "error"] = Field(
        description="unsupported: a broker's action the ledger does not take (the message"
        " says why); skipped: not a transaction (a total line, a reversal pair)."
    )
    message: str | None
    transaction_id: UUID | None = Field(description="The ledger row written (or to be).")


class ImportReport(BaseModel):
    dry_run: bool
    layout: Literal["native", "schwab"] = Field(
        description="The layout read: the documented one, or Schwab's transactions export."
    )
    imported: int
    duplicates: int
    skipped: int
    unsupported: int
    errors: int
    rows: list[ImportedRow]
    portfolio: PortfolioOut
