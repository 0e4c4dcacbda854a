"""The risk x-ray of a portfolio's holdings as they are now (or as a proposal would leave
them). Pure: no I/O. Rules (docs/portfolio.md, "Risk x-ray"):

- **Concentration**: each position's and each sector's weight (of total value, cash
  included) against the limits; those above are listed with their excess. Positions
  whose sector market does not know are ``UNCLASSIFIED``, which is shown as a sector
  but never flagged (it is not one sector).
- **Risk** of the current weights held constant over the window (ex-ante, the way a risk
  report reads a portfolio): the portfolio's daily return is ``sum(w_i x r_i)`` over the
  holdings' daily returns from market's *adjusted* closes (a split is not a loss), cash
  earning nothing. On a day a holding has no return yet (listed later than the window
  starts) it counts as flat. From that series: annualised volatility (sample standard
  deviation x sqrt 252), beta against the market index's total-return daily returns
  (covariance over variance, the days both have one) and maximum drawdown (the deepest
  fall of the compounded series from a previous peak) -- as empyrical computes them.
- **SELL calls**: the holdings whose latest live recommendation is SELL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np
import numpy.typing as npt

from services.portfolio.domain.ledger import WEIGHT, ZERO
from services.portfolio.domain.performance import TRADING_DAYS, IndexLevels

UNCLASSIFIED = "UNCLASSIFIED"
# Fewer daily returns than this say nothing about risk: the figures are withheld.
MIN_RETURNS = 20

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Limits:
    max_position_weight: Decimal
    max_sector_weight: Decimal


@dataclass(frozen=True, slots=True)
class Holdings:
    """What a portfolio holds at some prices: each priced position's value and sector,
    and cash. Weights are fractions of ``total`` (cash included)."""

    values: Mapping[str, Decimal]
    sectors: Mapping[str, str | None]
    cash: Decimal

    @property
    def total(self) -> Decimal:
        return self.cash + sum(self.values.values(), ZERO)

    def weights(self) -> dict[str, Decimal]:
        total = self.total
        if total <= 0:
            return dict.fromkeys(self.values, ZERO)
        return {
            t: (v / total).quantize(WEIGHT, rounding=ROUND_HALF_EVEN)
            for t, v in sorted(self.values.items())
            if v > 0
        }


@dataclass(frozen=True, slots=True)
class ReturnHistory:
    """Daily returns of some tickers over the same days (oldest first): ``returns[d, i]``
    is ticker i's return from the previous day to ``days[d]``, NaN before its first close.
    ``index`` is the market index's return on those days (NaN where it has no level)."""

    days: list[date]
    tickers: list[str]
    returns: Floats
    index: Floats | None
    missing: list[str]  # tickers market has no closes for

    def column(self, ticker: str) -> int | None:
        try:
            return self.tickers.index(ticker)
        except ValueError:
            return None


def history_of(
    closes: Mapping[str, Sequence[tuple[date, float]]],
    tickers: Sequence[str],
    index: IndexLevels | None,
) -> ReturnHistory:
    """Align each ticker's closes on the union of their days (a day without a close
    carries the last one forward) and take daily returns; the index's level on a day is
    its last on or before it."""
    days = sorted({d for t in tickers for d, _ in closes.get(t, ())})
    at = {d: i for i, d in enumerate(days)}
    levels = np.full((len(days), len(tickers)), np.nan)
    for j, ticker in enumerate(tickers):
        for day, close in closes.get(ticker, ()):
            levels[at[day], j] = close
    # Forward-fill along days (numpy: the index of the last valid row so far).
    valid = ~np.isnan(levels)
    last = np.where(valid, np.arange(len(days))[:, None], 0)
    np.maximum.accumulate(last, axis=0, out=last)
    filled = levels[last, np.arange(len(tickers))]
    filled[~np.maximum.accumulate(valid, axis=0)] = np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        returns = filled[1:] / filled[:-1] - 1.0
    index_returns = None
    if index is not None and days:
        lv = np.array([index.on_or_before(d) or np.nan for d in days], dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            index_returns = lv[1:] / lv[:-1] - 1.0
    return ReturnHistory(
        days=days[1:],
        tickers=list(tickers),
        returns=returns,
        index=index_returns,
        missing=sorted(t for t in tickers if not closes.get(t)),
    )


@dataclass(frozen=True, slots=True)
class Breach:
    name: str  # a ticker or a sector
    weight: Decimal
    limit: Decimal

    @property
    def excess(self) -> Decimal:
        return self.weight - self.limit


@dataclass(frozen=True, slots=True)
class Risk:
    available: bool
    note: str | None = None
    start: date | None = None
    end: date | None = None
    days: int = 0
    volatility: float | None = None
    beta: float | None = None
    max_drawdown: float | None = None
    short_history: list[str] = field(default_factory=list)  # no return on some days
    missing_history: list[str] = field(default_factory=list)  # no closes at all


@dataclass(frozen=True, slots=True)
class SellCall:
    ticker: str
    weight: Decimal
    confidence: float
    recommendation_id: object  # the call's id (a UUID), passed through


@dataclass(frozen=True, slots=True)
class XRay:
    total_value: Decimal
    cash_weight: Decimal
    weights: dict[str, Decimal]
    sector_weights: dict[str, Decimal]
    largest_position: tuple[str, Decimal] | None
    effective_positions: float | None  # 1 / sum(w^2) over the positions' own weights
    positions_over_limit: list[Breach]
    sectors_over_limit: list[Breach]
    risk: Risk
    sells: list[SellCall] | None  # None: recommendations unavailable


def daily_returns(weights: Mapping[str, float], history: ReturnHistory) -> Floats:
    """The constant-weight portfolio's daily returns: ``sum(w_i x r_i)``, a holding
    without a return on a day counting as flat."""
    w = np.zeros(len(history.tickers))
    for ticker, weight in weights.items():
        j = history.column(ticker)
        if j is not None:
            w[j] = weight
    result: Floats = np.nan_to_num(history.returns, nan=0.0) @ w
    return result


def volatility(returns: Floats) -> float | None:
    if len(returns) < 2:
        return None
    return float(np.std(returns, ddof=1) * math.sqrt(TRADING_DAYS))


def beta(returns: Floats, index: Floats) -> float | None:
    both = ~np.isnan(returns) & ~np.isnan(index)
    if both.sum() < 2:
        return None
    x, y = index[both], returns[both]
    x = x - x.mean()
    variance = float(np.mean(x * x))
    if variance == 0:
        return None
    return float(np.mean(x * (y - y.mean())) / variance)


def max_drawdown(returns: Floats) -> float | None:
    if len(returns) == 0:
        return None
    growth = np.cumprod(np.concatenate(([1.0], 1.0 + returns)))
    peaks = np.maximum.accumulate(growth)
    return float(np.min(growth / peaks - 1.0))


def risk_of(weights: Mapping[str, float], history: ReturnHistory | None, note: str | None) -> Risk:
    """Volatility, beta and drawdown of ``weights`` held constant over ``history``."""
    if history is None:
        return Risk(available=False, note=note)
    held = [t for t, w in weights.items() if w != 0]
    if not held:
        return Risk(available=False, note="nothing is invested: no market risk")
    if len(history.days) < MIN_RETURNS:
        return Risk(
            available=False,
            note=f"fewer than {MIN_RETURNS} days of market history for the holdings",
            missing_history=sorted(set(held) & set(history.missing)),
        )
    series = daily_returns(weights, history)
    short = sorted(
        t
        for t in held
        if (j := history.column(t)) is not None
        and t not in history.missing
        and bool(np.isnan(history.returns[:, j]).any())
    )
    index = history.index
    return Risk(
        available=True,
        note=None if index is not None else "market's index did not answer: no beta",
        start=history.days[0],
        end=history.days[-1],
        days=len(history.days),
        volatility=volatility(series),
        beta=beta(series, index) if index is not None else None,
        max_drawdown=max_drawdown(series),
        short_history=short,
        missing_history=sorted(set(held) & set(history.missing)),
    )


def xray(
    holdings: Holdings,
    limits: Limits,
    history: ReturnHistory | None,
    calls: Mapping[str, tuple[str, float, object]] | None,
    *,
    history_note: str | None = None,
) -> XRay:
    """The x-ray of ``holdings``. ``calls`` maps a ticker to its latest call (action,
    confidence, id), None when recommendations did not answer; ``history`` is None when
    market's history did not answer (``history_note`` says why)."""
    total = holdings.total
    weights = holdings.weights()
    by_sector: dict[str, Decimal] = {}
    for ticker, value in holdings.values.items():
        sector = holdings.sectors.get(ticker) or UNCLASSIFIED
        by_sector[sector] = by_sector.get(sector, ZERO) + value
    sector_weights = (
        {
            s: (v / total).quantize(WEIGHT, rounding=ROUND_HALF_EVEN)
            for s, v in sorted(by_sector.items())
        }
        if total > 0
        else {}
    )
    cash_weight = (
        (holdings.cash / total).quantize(WEIGHT, rounding=ROUND_HALF_EVEN) if total > 0 else ZERO
    )
    positions_over = sorted(
        (Breach(t, w, limits.max_position_weight) for t, w in weights.items()),
        key=lambda b: (-b.weight, b.name),
    )
    sectors_over = sorted(
        (
            Breach(s, w, limits.max_sector_weight)
            for s, w in sector_weights.items()
            if s != UNCLASSIFIED
        ),
        key=lambda b: (-b.weight, b.name),
    )
    squares = sum(float(w) ** 2 for w in weights.values())
    invested = sum(float(w) for w in weights.values())
    largest = max(weights.items(), key=lambda item: (item[1], item[0]), default=None)
    sells = None
    if calls is not None:
        sells = [
            SellCall(t, w, calls[t][1], calls[t][2])
            for t, w in weights.items()
            if t in calls and calls[t][0] == "SELL"
        ]
    exact = {t: float(v / total) for t, v in holdings.values.items()} if total > 0 else {}
    return XRay(
        total_value=total,
        cash_weight=cash_weight,
        weights=weights,
        sector_weights=sector_weights,
        largest_position=largest,
        effective_positions=invested**2 / squares if squares > 0 else None,
        positions_over_limit=[b for b in positions_over if b.weight > b.limit],
        sectors_over_limit=[b for b in sectors_over if b.weight > b.limit],
        risk=risk_of(exact, history, history_note),
        sells=sells,
    )
