"""The words of a call: its thesis, its risk factors, the methodology disclosure.

The thesis is written from the call's own largest factor contributions, each described
with its value and its rank in the universe, so two stocks rated the same for different
reasons read differently. Risk factors are rules on the same data (thresholds in the
model specification). The disclosure states criteria, weights, assumptions, horizon,
limitations and the data's provenance, as the SEC marketing rule asks of an adviser.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from services.recommendations.domain import spec as s
from services.recommendations.domain.calls import Action


def _pct(value: float, digits: int = 1) -> str:
    return f"{value * 100:+.{digits}f}%"


def _standing(percentile: float | None) -> str:
    """ "top 9% of the universe" (empty when unknown)."""
    if percentile is None:
        return ""
    if percentile >= 0.5:
        return f"top {max(1, round((1 - percentile) * 100))}% of the universe"
    return f"bottom {max(1, round(percentile * 100))}% of the universe"


def _paren(*parts: str) -> str:
    kept = [p for p in parts if p]
    return f" ({', '.join(kept)})" if kept else ""


def _money(amount: float) -> str:
    if amount >= 1e9:
        return f"${amount / 1e9:.1f}B"
    if amount >= 1e6:
        return f"${amount / 1e6:.1f}M"
    return f"${amount / 1e3:.0f}K"


def describe_factor(key: str, value: float, percentile: float | None, sector: str | None) -> str:
    """One factor reading as a clause that follows "the stock ..."."""
    rank = _standing(percentile)
    if key == s.MOMENTUM_12_1:
        verb = "rose" if value >= 0 else "fell"
        return (
            f"{verb} {abs(value) * 100:.1f}% over the twelve months to a month ago"
            f"{_paren('12-1 momentum', rank)}"
        )
    if key == s.MOMENTUM_6M:
        return f"returned {_pct(value)} over six months{_paren(rank)}"
    if key == s.TREND_200D:
        side = "above" if value >= 0 else "below"
        return f"trades {abs(value) * 100:.1f}% {side} its 200-day average{_paren(rank)}"
    if key == s.RSI_14:
        if value >= 70:
            mood = "overbought, which often precedes a short-term pullback"
        elif value <= 30:
            mood = "oversold, which often precedes a short-term rebound"
        elif value >= 50:
            mood = "leaning stretched on the short term"
        else:
            mood = "leaning washed-out on the short term"
        return f"has a 14-day RSI of {value:.0f}, {mood}"
    if key == s.VOLATILITY_63D:
        share = percentile if percentile is not None else 0.5
        if share < 0.5:
            among = f"among the calmest {max(1, round(share * 100))}%"
        else:
            among = f"among the most volatile {max(1, round((1 - share) * 100))}%"
        return (
            f"has moved {value * 100:.0f}% annualised over three months ({among}"
            " of the universe by volatility)"
        )
    if key == s.DRAWDOWN_252D:
        if value > -0.02:
            return "sits at or near its 52-week high"
        return f"sits {abs(value) * 100:.1f}% below its 52-week high{_paren(rank)}"
    if key == s.LIQUIDITY_21D:
        depth = "deep" if (percentile or 0.5) >= 0.5 else "thin"
        return f"trades a {depth} {_money(10**value)} a day on average{_paren(rank)}"
    if key == s.SECTOR_RELATIVE_6M:
        peer = f"the {sector} sector" if sector else "the universe"
        verb = "outperformed" if value >= 0 else "lagged"
        return f"{verb} {peer} by {abs(value) * 100:.1f} points over six months"
    raise ValueError(f"unknown factor {key}")


def _join(clauses: Sequence[str]) -> str:
    if len(clauses) == 1:
        return clauses[0]
    return ", ".join(clauses[:-1]) + " and " + clauses[-1]


def thesis(
    *,
    ticker: str,
    action: Action,
    score: float,
    score_percentile: float,
    universe: int,
    readings: Sequence[tuple[str, float | None, float, float | None]],
    sector: str | None,
    expected_return: float | None,
    horizon_days: int,
) -> str:
    """``readings``: (factor key, value, contribution, percentile) of every factor."""
    # Contributions under 0.05 of a unit of score are too small to give as reasons.
    known = [r for r in readings if r[1] is not None and abs(r[2]) >= 0.05]
    supportive = sorted((r for r in known if r[2] > 0), key=lambda r: -r[2])
    against = sorted((r for r in known if r[2] < 0), key=lambda r: r[2])
    if action is Action.SELL:
        supportive, against = against, supportive

    def clauses(rows: Sequence[tuple[str, float | None, float, float | None]]) -> list[str]:
        return [describe_factor(k, v, p, sector) for k, v, _, p in rows if v is not None]

    standing = (
        f"a composite score of {score:+.2f}"
        f"{_paren(_standing(score_percentile).replace('the universe', f'{universe:,} stocks'))}"
    )
    if action is Action.HOLD:
        up, down = clauses(supportive[:1]), clauses(against[:1])
        text = f"{ticker} is a HOLD: {standing} sits between the model's bands."
        if up and down:
            text += f" It {up[0]}, but it {down[0]}."
        elif up or down:
            text += f" It {(up or down)[0]}, and nothing else stands out."
    else:
        verb = "BUY" if action is Action.BUY else "SELL"
        top = clauses(supportive[:2]) or ["shows no single standout factor"]
        text = f"{ticker} is a {verb}, with {standing}: it {_join(top)}."
        offset = clauses(against[:1])
        if offset and abs(against[0][2]) >= 0.25 * abs(supportive[0][2] if supportive else 1.0):
            text += f" Against that, it {offset[0]}."
    if expected_return is not None:
        text += (
            f" The model expects {_pct(expected_return, 2)} relative to the market over the next"
            f" {horizon_days} trading sessions."
        )
    return text


def risk_factors(
    *,
    spec: s.ModelSpec,
    action: Action,
    confidence: float,
    confidence_fitted: bool,
    volatility: float | None,
    drawdown: float | None,
    dollar_volume: float | None,
    history_days: int,
    missing: Sequence[str],
    sector: str | None,
    sector_share: float | None,
    recent_actions: Sequence[tuple[date, str]],
) -> list[str]:
    """The rules, in a fixed order; an empty list only when none applies."""
    risks: list[str] = []
    if volatility is not None and volatility >= spec.high_volatility:
        risks.append(
            f"High volatility: {volatility * 100:.0f}% annualised over three months; the price can"
            " move far from the target within the horizon."
        )
    if drawdown is not None and -drawdown >= spec.deep_drawdown:
        risks.append(
            f"Deep drawdown: {abs(drawdown) * 100:.0f}% below its 52-week high; falling prices"
            " can keep falling."
        )
    if dollar_volume is None:
        risks.append("Liquidity not assessed: no volume data reached the model.")
    elif dollar_volume < spec.thin_liquidity_usd:
        risks.append(
            f"Thin liquidity: about {_money(dollar_volume)} traded a day;"
            " orders can move the price."
        )
    if sector_share is not None and sector_share >= spec.sector_concentration and sector:
        risks.append(
            f"Sector concentration: {sector_share * 100:.0f}% of this run's {action.value} calls"
            f" are in {sector}; they may move together."
        )
    for when, kind in recent_actions:
        risks.append(
            f"Recent {kind} (ex-date {when.isoformat()}): prices before it are adjusted, and"
            " the adjustment depends on the announced terms."
        )
    if history_days < 252 or missing:
        detail = f" ({', '.join(missing)} not computed)" if missing else ""
        risks.append(f"Short price history: {history_days} sessions{detail}.")
    if confidence < spec.low_confidence:
        how = "observed hit rate" if confidence_fitted else "uncalibrated prior"
        risks.append(f"Low confidence: {confidence:.2f} ({how}); the call is close to a coin flip.")
    return risks


def methodology_disclosure(
    spec: s.ModelSpec, calibration_note: str, simulated: bool, hypothetical: bool
) -> str:
    weights = "; ".join(f"{f.label} {f.weight:+.2f}" for f in spec.factors)
    parts = [
        f"Model {spec.version}: a quantitative multi-factor ranking of the universe on daily"
        f" split- and dividend-adjusted prices. Criteria and weights on cross-sectional z-scores:"
        f" {weights}. The composite score is scaled to unit spread across the universe;"
        f" BUY at or above {spec.buy_at:+.2f}, SELL at or below {spec.sell_at:+.2f}, HOLD between.",
        f"Horizon: {spec.horizon_days} trading sessions. The target price is the price at the"
        f" call grown by the expected return relative to the market (information coefficient"
        f" {spec.ic_prior:.2f} x volatility over the horizon x score); it assumes a flat market"
        " and is not a forecast of the market.",
        calibration_note,
        "Limitations: the model reads prices and volumes only (no fundamentals, news or"
        " valuation); factor premia can vanish or reverse; it does not model transaction costs,"
        " taxes or your circumstances. Each call uses only data up to its as-of session.",
    ]
    if simulated:
        parts.append(
            "The universe is SIMULATED: prices are generated, not real market data, and calls"
            " on them say nothing about real securities."
        )
    if hypothetical:
        parts.append(
            "HYPOTHETICAL: this call was produced by a walk-forward backtest, not published at"
            " the time; hypothetical performance has inherent limitations."
        )
    parts.append(
        "For information only; not investment advice. Past performance does not"
        " guarantee future results."
    )
    return " ".join(parts)
