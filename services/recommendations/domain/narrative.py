"""The words of a call: its thesis, its risk factors, the methodology disclosure.

The thesis is written from the call's own largest factor contributions, each described
with its value and its rank in the universe, so two stocks rated the same for different
reasons read differently. Risk factors are rules on the same data (thresholds in the
model specification). The disclosure states criteria, weights, assumptions, horizon,
limitations and the data's provenance, as the SEC marketing rule asks of an adviser.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def _in_tail(percentile: float | None, tail: float | None, *, top: bool) -> bool:
    """Whether a percentile (rank / n, in (0, 1]) is in the top or bottom ``tail`` of the
    universe: the n x tail highest or lowest values."""
    if percentile is None or tail is None:
        return False
    return percentile > 1 - tail if top else percentile <= tail


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
    percentiles: Mapping[str, float | None] | None = None,
    momentum: float | None = None,
    momentum_6m: float | None = None,
) -> list[str]:
    """The rules, in a fixed order; an empty list only when none applies.

    ``percentiles``: each factor's percentile in the run's universe (for the relative rules
    of versions that have them; None in a universe too small for them); ``momentum``: the
    12-1 return, ``momentum_6m`` the 6-month."""
    ranks = percentiles or {}
    tail = spec.tail
    risks: list[str] = []
    if spec.extreme_tail is not None:
        risks += _extreme_move(spec, momentum, momentum_6m, ranks)
    vol_rank = ranks.get(s.VOLATILITY_63D)
    vol_tail = _in_tail(vol_rank, tail, top=True)
    if volatility is not None and (volatility >= spec.high_volatility or vol_tail):
        among = _paren(_standing(vol_rank).replace("top", "the most volatile")) if vol_tail else ""
        risks.append(
            f"High volatility: {volatility * 100:.0f}% annualised over three months{among};"
            " the price can move far from the target within the horizon."
        )
    dd_rank = ranks.get(s.DRAWDOWN_252D)
    dd_tail = _in_tail(dd_rank, tail, top=False)
    if drawdown is not None and (-drawdown >= spec.deep_drawdown or dd_tail):
        among = _paren(_standing(dd_rank).replace("bottom", "the deepest")) if dd_tail else ""
        risks.append(
            f"Deep drawdown: {abs(drawdown) * 100:.0f}% below its 52-week high{among};"
            " falling prices can keep falling."
        )
    liq_rank = ranks.get(s.LIQUIDITY_21D)
    liq_tail = _in_tail(liq_rank, tail, top=False)
    if dollar_volume is None:
        risks.append("Liquidity not assessed: no volume data reached the model.")
    elif dollar_volume < spec.thin_liquidity_usd or liq_tail:
        among = _paren(_standing(liq_rank).replace("bottom", "the thinnest")) if liq_tail else ""
        risks.append(
            f"Thin liquidity: about {_money(dollar_volume)} traded a day{among};"
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


def _extreme_move(
    spec: s.ModelSpec,
    momentum: float | None,
    momentum_6m: float | None,
    ranks: Mapping[str, float | None],
) -> list[str]:
    """An extreme mover: a 12-1 return beyond the absolute bounds, or a 12-1 or 6-month
    return in the universe's extreme tail. Extreme winners are prone to sharp reversals
    (momentum crashes), extreme losers to distress; the model's average relation between
    score and return is least reliable out there."""
    assert spec.extreme_tail is not None
    readings = (
        (momentum, ranks.get(s.MOMENTUM_12_1), "over the twelve months to a month ago"),
        (momentum_6m, ranks.get(s.MOMENTUM_6M), "over six months"),
    )
    for value, rank, span in readings:
        if value is None:
            continue
        absolute = span.startswith("over the twelve") and (
            (spec.extreme_gain is not None and value >= spec.extreme_gain)
            or (spec.extreme_loss is not None and value <= spec.extreme_loss)
        )
        tail = _in_tail(rank, spec.extreme_tail, top=True) or _in_tail(
            rank, spec.extreme_tail, top=False
        )
        if absolute or tail:
            verb = "rose" if value >= 0 else "fell"
            after = (
                "extreme winners are prone to sharp reversals"
                if value >= 0
                else "extreme losers can be in distress and rebound or fall further abruptly"
            )
            return [
                f"Extreme move: {verb} {abs(value) * 100:.0f}% {span}{_paren(_standing(rank))};"
                f" {after}, and the model's estimates are least reliable at the extremes."
            ]
    return []


def _risk_rules(spec: s.ModelSpec) -> list[str]:
    """The risk-factor rules, stated (versions with relative rules; mf-1.0 did not)."""
    if spec.tail is None or spec.extreme_tail is None:
        return []
    tail, extreme = round(spec.tail * 100), round(spec.extreme_tail * 100)
    gain = f"{(spec.extreme_gain or 0) * 100:+.0f}%"
    loss = f"{(spec.extreme_loss or 0) * 100:+.0f}%"
    return [
        f"Risk factors flag: an extreme move (12-1 return at or beyond {gain} or {loss}, or a"
        f" 12-1 or 6-month return in the universe's top or bottom {extreme}%); volatility of"
        f" {spec.high_volatility * 100:.0f}% a year or more, or the universe's most volatile"
        f" {tail}%; a drawdown of {spec.deep_drawdown * 100:.0f}% or more, or the deepest {tail}%;"
        f" under {_money(spec.thin_liquidity_usd)} traded a day, or the thinnest {tail}%;"
        f" {spec.sector_concentration * 100:.0f}% or more of the run's calls of the same action"
        f" in one sector; a split or dividend in the last {spec.recent_action_days} days; short"
        f" history; confidence under {spec.low_confidence:.2f}. The relative rules apply"
        f" in runs of {spec.relative_min_universe} stocks or more."
    ]


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
        *_risk_rules(spec),
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
