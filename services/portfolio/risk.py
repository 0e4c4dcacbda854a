"""The risk x-ray's inputs and answers, and the rebalance targets that need other
contexts: what the x-ray, the impact preview and a rebalance proposal share.

- :func:`gather_context` asks market (adjusted daily closes, the total-return index) and
  recommendations (the latest live calls) at once; either may be away, and the x-ray then
  says which part is unavailable instead of failing.
- :func:`resolve_targets` turns a rebalance target into weights: explicit and equal as
  given, "follow the recommendations" (:mod:`.domain.targets`) and the optimiser
  (:mod:`.domain.optimise`, off the event loop).
- :func:`xray_out` renders a :class:`~.domain.xray.XRay` as the API's model.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from services.portfolio.domain import ZERO, Quote, money
from services.portfolio.domain import optimise as optimiser
from services.portfolio.domain import rebalance as rebalancing
from services.portfolio.domain import targets as following
from services.portfolio.domain import xray as xr
from services.portfolio.errors import (
    MarketUnavailableError,
    NoRecommendationsError,
    RebalanceRefusedError,
    RecommendationsUnavailableError,
)
from services.portfolio.market import CloseBook, IndexBook, MarketQuotes
from services.portfolio.recommendations import CallBook, LatestRecommendations
from services.portfolio.schemas import (
    XRAY_BETA_METHOD,
    XRAY_DRAWDOWN_METHOD,
    XRAY_VOLATILITY_METHOD,
    Breach,
    EqualTarget,
    ExplicitTarget,
    HoldingWeight,
    LimitsOut,
    OptimisedTarget,
    RebalanceTarget,
    RecommendationsTarget,
    ReturnFigure,
    RiskFigures,
    SectorWeight,
    SellSignal,
    SellSignals,
    XRay,
    XRayLimits,
)

_RATIO = Decimal("1E-8")
NO_HISTORY = "market's daily history did not answer: no risk figures"
NO_CALLS = "recommendations did not answer: SELL calls unknown"
NO_RUN = "no live recommendation run has been published yet"


@dataclass(frozen=True, slots=True)
class RiskSettings:
    """The x-ray's defaults (``PORTFOLIO_XRAY_*``) and how long recommendations may take."""

    limits: xr.Limits
    history_days: int
    recommendations_timeout: float

    def limits_for(
        self, max_position_weight: Decimal | None, max_sector_weight: Decimal | None
    ) -> xr.Limits:
        """The request's limits, each defaulting to the setting."""
        return xr.Limits(
            max_position_weight
            if max_position_weight is not None
            else self.limits.max_position_weight,
            max_sector_weight if max_sector_weight is not None else self.limits.max_sector_weight,
        )

    def limits_of(self, given: XRayLimits) -> xr.Limits:
        return self.limits_for(given.max_position_weight, given.max_sector_weight)


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the x-ray's inputs come from besides market's quotes: the latest
    recommendations, and the x-ray's settings."""

    recommendations: LatestRecommendations
    settings: RiskSettings


@dataclass(frozen=True, slots=True)
class Context:
    """What the x-ray reads from other contexts, for a set of tickers."""

    closes: CloseBook
    index: IndexBook
    calls: CallBook
    start: date  # the earliest day asked for
    today: date

    def history(self, days: int, tickers: Sequence[str]) -> xr.ReturnHistory | None:
        """Daily returns of ``tickers`` over the last ``days`` calendar days (None when
        market did not answer)."""
        if not self.closes.available:
            return None
        since = self.today - timedelta(days=days)
        closes = {
            t: [(d, float(c)) for d, c in s if d >= since] for t, s in self.closes.closes.items()
        }
        return xr.history_of(closes, tickers, self.index.levels)

    def call_map(self) -> dict[str, tuple[str, float, object]] | None:
        if not self.calls.available:
            return None
        return {t: (c.action, c.confidence, c.id) for t, c in self.calls.calls.items()}


async def gather_context(
    market: MarketQuotes,
    recommendations: LatestRecommendations,
    tickers: Iterable[str],
    *,
    days: int,
    today: date,
) -> Context:
    """Adjusted closes and the index over the last ``days`` calendar days, and the latest
    calls, asked at once. Never raises for either context being away."""
    wanted = sorted(set(tickers))
    start = today - timedelta(days=days)
    closes, index, calls = await asyncio.gather(
        market.closes(wanted, start, today, adjusted=True),
        market.index(start - timedelta(days=7), today),
        recommendations.latest(wanted),
    )
    return Context(closes, index, calls, start, today)


def holdings_at(
    quantities: Mapping[str, Decimal], quotes: Mapping[str, Quote], cash: Decimal
) -> xr.Holdings:
    """Each priced position's value and sector at ``quotes``, and cash."""
    values = {t: money(q * quotes[t].price) for t, q in quantities.items() if q > 0 and t in quotes}
    return xr.Holdings(values, {t: quotes[t].sector for t in values}, cash)


def _ratio(value: float | None) -> Decimal | None:
    if value is None or not math.isfinite(value):
        return None
    return Decimal(repr(value)).quantize(_RATIO, rounding=ROUND_HALF_EVEN)


def xray_of(
    holdings: xr.Holdings, limits: xr.Limits, context: Context, days: int
) -> tuple[xr.XRay, xr.ReturnHistory | None]:
    history = context.history(days, sorted(holdings.values))
    figures = xr.xray(
        holdings,
        limits,
        history,
        context.call_map(),
        history_note=None if context.closes.available else NO_HISTORY,
    )
    return figures, history


def xray_out(x: xr.XRay, limits: xr.Limits, holdings: xr.Holdings, calls: CallBook) -> XRay:
    """The API's x-ray."""
    sector = {t: holdings.sectors.get(t) or xr.UNCLASSIFIED for t in holdings.values}
    weights = sorted(x.weights.items(), key=lambda item: (-item[1], item[0]))
    risk = x.risk
    if calls.available:
        note = NO_RUN if calls.run_id is None else None
    else:
        note = f"{NO_CALLS} ({calls.problem})" if calls.problem else NO_CALLS
    return XRay(
        total_value=x.total_value,
        cash_weight=x.cash_weight,
        limits=LimitsOut(
            max_position_weight=limits.max_position_weight,
            max_sector_weight=limits.max_sector_weight,
        ),
        weights=[HoldingWeight(ticker=t, weight=w, sector=sector[t]) for t, w in weights],
        sectors=[SectorWeight(sector=s, weight=w) for s, w in x.sector_weights.items()],
        largest_position=HoldingWeight(
            ticker=x.largest_position[0],
            weight=x.largest_position[1],
            sector=sector[x.largest_position[0]],
        )
        if x.largest_position
        else None,
        effective_positions=_ratio(x.effective_positions),
        positions_over_limit=[_breach(b) for b in x.positions_over_limit],
        sectors_over_limit=[_breach(b) for b in x.sectors_over_limit],
        risk=RiskFigures(
            available=risk.available,
            note=risk.note,
            start=risk.start,
            end=risk.end,
            days=risk.days,
            volatility=ReturnFigure(method=XRAY_VOLATILITY_METHOD, value=_ratio(risk.volatility)),
            beta=ReturnFigure(method=XRAY_BETA_METHOD, value=_ratio(risk.beta)),
            max_drawdown=ReturnFigure(method=XRAY_DRAWDOWN_METHOD, value=_ratio(risk.max_drawdown)),
            short_history=risk.short_history,
            missing_history=risk.missing_history,
        ),
        sell_signals=SellSignals(
            available=x.sells is not None,
            note=note,
            run_id=calls.run_id,
            as_of=calls.as_of,
            holdings=[
                SellSignal(
                    ticker=s.ticker,
                    weight=s.weight,
                    confidence=s.confidence,
                    recommendation_id=s.recommendation_id,
                )
                for s in x.sells or []
            ],
        ),
    )


def _breach(b: xr.Breach) -> Breach:
    return Breach(name=b.name, weight=b.weight, limit=b.limit, excess=b.excess)


# --- targets -----------------------------------------------------------------------------


def universe(target: RebalanceTarget, held: Sequence[str], excluded: frozenset[str]) -> list[str]:
    """The tickers a target names or implies (before knowing their weights)."""
    own = [t for t in held if t not in excluded]
    if isinstance(target, ExplicitTarget):
        return sorted(target.weights)
    if isinstance(target, RecommendationsTarget):
        return sorted(set(own) | set(target.tickers or ()))
    return sorted(target.tickers or own)


def _refused(
    exc: rebalancing.RebalanceRejected | optimiser.OptimiseRejected,
) -> RebalanceRefusedError:
    return RebalanceRefusedError(exc.reason, exc.message, dict(exc.details))


async def resolve_targets(
    target: RebalanceTarget, chosen: Sequence[str], context: Context
) -> tuple[dict[str, Decimal], str]:
    """Target weights for ``chosen`` (see :func:`universe`), and how they were made."""
    if isinstance(target, ExplicitTarget):
        return dict(target.weights), "explicit weights"
    if isinstance(target, EqualTarget):
        try:
            return rebalancing.equal_weights(chosen), "equal weights"
        except rebalancing.RebalanceRejected as exc:
            raise _refused(exc) from None
    if isinstance(target, RecommendationsTarget):
        book = context.calls
        if not book.available:
            raise RecommendationsUnavailableError(details={"reason": book.problem})
        if book.run_id is None:
            raise NoRecommendationsError()
        calls = {t: (c.action, c.confidence) for t, c in book.calls.items()}
        weights = following.follow(calls, chosen, target.buy_tilt)
        return weights, (
            f"the latest live recommendations (run {book.run_id}, {book.as_of}): SELL 0, HOLD"
            f" or no call 1, BUY 1 + {target.buy_tilt} x confidence, over the sum"
        )
    return await _optimised(target, chosen, context)


async def _optimised(
    target: OptimisedTarget, chosen: Sequence[str], context: Context
) -> tuple[dict[str, Decimal], str]:
    if not chosen:
        raise RebalanceRefusedError("NO_TICKERS", "There is nothing to optimise.", {})
    history = context.history(target.history_days, sorted(chosen))
    if history is None:
        raise MarketUnavailableError(
            "Market's daily history is unavailable; the optimiser needs it.",
            details={"reason": context.closes.problem},
        )
    try:
        returns = optimiser.common_returns(history.returns, history.tickers)
        method = optimiser.Method(target.method)
        weights, _ = await asyncio.to_thread(optimiser.optimise, method, returns)
    except optimiser.OptimiseRejected as exc:
        raise _refused(exc) from None
    what = "minimum variance" if method is optimiser.Method.MIN_VARIANCE else "risk parity"
    return optimiser.to_targets(history.tickers, weights), (
        f"{what} (long-only, fully invested; skfolio) on a Ledoit-Wolf shrunk covariance of"
        f" {len(returns)} days of daily returns (adjusted closes) since"
        f" {context.today - timedelta(days=target.history_days)}"
    )


def quantities_after(
    held: Mapping[str, Decimal], trades: Sequence[rebalancing.Trade]
) -> dict[str, Decimal]:
    after = dict(held)
    for t in trades:
        after[t.ticker] = after.get(t.ticker, ZERO) + (
            t.quantity if t.side == "BUY" else -t.quantity
        )
    return after
