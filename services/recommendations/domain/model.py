"""The model end to end: a price panel and an as-of date in, one complete call per stock out.

:func:`run_model` computes the factor frame (point in time) and hands it to
:func:`call_universe`, which does everything else from the frame alone. Replaying a
published call is :func:`call_universe` on the frame rebuilt from the values recorded with
the run: same frame, same specification, same calibration, same calls.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from services.recommendations.domain import narrative
from services.recommendations.domain import spec as s
from services.recommendations.domain.calibration import Calibration
from services.recommendations.domain.calls import Action
from services.recommendations.domain.factors import FactorFrame, Panel, compute_factors
from services.recommendations.domain.scoring import conviction, score

RecentActions = tuple[tuple[date, str], ...]


@dataclass(frozen=True)
class FactorReading:
    key: str
    value: float | None  # None: not enough history
    z: float
    contribution: float
    percentile: float | None


@dataclass(frozen=True)
class Call:
    ticker: str
    sector: str | None
    as_of: date
    price_at_call: float
    action: Action
    score: float
    conviction: float
    confidence: float
    target_price: float | None
    expected_return: float | None
    factors: tuple[FactorReading, ...]
    thesis: str
    risk_factors: tuple[str, ...]
    methodology_disclosure: str
    data_sources: tuple[str, ...]
    model_version: str
    horizon_days: int
    history_days: int
    dollar_volume: float | None
    recent_actions: RecentActions


def _known(x: float) -> float | None:
    """``x``, or None for NaN (a Python float: NaN is the one unequal to itself)."""
    return None if x != x else x


def recent_actions_of(panel: Panel, as_of: date, spec: s.ModelSpec) -> dict[str, RecentActions]:
    """Each security's splits and dividends with an ex-date in the last
    ``spec.recent_action_days`` up to ``as_of`` (nothing later: point in time)."""
    since = as_of - timedelta(days=spec.recent_action_days)
    out: dict[str, RecentActions] = {}
    for ticker, actions in panel.actions.items():
        recent = tuple(
            (a.ex_date, a.kind)
            for a in sorted(actions, key=lambda a: a.ex_date)
            if since < a.ex_date <= as_of
        )
        if recent:
            out[ticker] = recent
    return out


def call_universe(
    frame: FactorFrame,
    spec: s.ModelSpec,
    calibration: Calibration,
    *,
    sources: Mapping[str, tuple[str, ...]],
    recent_actions: Mapping[str, RecentActions],
    hypothetical: bool = False,
) -> list[Call]:
    """Every security of ``frame``, called."""
    scores = score(frame, spec)
    n = len(frame.tickers)
    by_action = Counter(scores.actions)
    by_action_sector = Counter(zip(scores.actions, frame.sectors, strict=True))
    vol_col = spec.keys.index(s.VOLATILITY_63D)
    dd_col = spec.keys.index(s.DRAWDOWN_252D)
    relative = spec.relative_min_universe is not None and n >= spec.relative_min_universe
    mom_col = spec.keys.index(s.MOMENTUM_12_1)
    mom6_col = spec.keys.index(s.MOMENTUM_6M)
    labels = {f.key: f.label for f in spec.factors}
    # Python floats once per array (the same values float() gives one at a time; NaN is
    # the one value unequal to itself), not numpy scalars per cell: most of a run's time.
    values, zs = frame.values.tolist(), scores.z.tolist()
    contributions, ranks = scores.contributions.tolist(), scores.percentile.tolist()
    composites, score_ranks = scores.score.tolist(), scores.score_percentile.tolist()
    expecteds, targets = scores.expected_return.tolist(), scores.target_price.tolist()
    dollars, histories, prices = (
        frame.dollar_volume.tolist(),
        frame.history_days.tolist(),
        frame.prices.tolist(),
    )
    disclosures: dict[bool, str] = {}  # the same text for every simulated (or real) stock
    calls = []
    for i, ticker in enumerate(frame.tickers):
        action = scores.actions[i]
        composite = composites[i]
        row = values[i]
        strength = conviction(action, composite, spec)
        confidence = round(calibration.confidence(action, strength), 3)
        readings = tuple(
            FactorReading(
                key=key,
                value=_known(row[j]),
                z=zs[i][j],
                contribution=contributions[i][j],
                percentile=_known(ranks[i][j]),
            )
            for j, key in enumerate(frame.keys)
        )
        expected = _known(expecteds[i])
        target = _known(targets[i])
        sector = frame.sectors[i]
        share = (
            by_action_sector[(action, sector)] / by_action[action]
            if action is not Action.HOLD and by_action[action] >= 10
            else None
        )
        own_sources = sources.get(ticker, ("market",))
        dollar = _known(dollars[i])
        risks = narrative.risk_factors(
            spec=spec,
            action=action,
            confidence=confidence,
            confidence_fitted=calibration.is_fitted(action),
            volatility=_known(row[vol_col]),
            drawdown=_known(row[dd_col]),
            dollar_volume=dollar,
            history_days=histories[i],
            missing=[labels[r.key] for r in readings if r.value is None],
            sector=sector,
            sector_share=share,
            recent_actions=recent_actions.get(ticker, ()),
            percentiles={r.key: r.percentile for r in readings} if relative else None,
            momentum=_known(row[mom_col]),
            momentum_6m=_known(row[mom6_col]),
        )
        simulated = any(src.endswith(":simulated") for src in own_sources)
        disclosure = disclosures.get(simulated)
        if disclosure is None:
            disclosure = disclosures[simulated] = narrative.methodology_disclosure(
                spec, calibration.describe(), simulated=simulated, hypothetical=hypothetical
            )
        calls.append(
            Call(
                ticker=ticker,
                sector=sector,
                as_of=frame.as_of,
                price_at_call=prices[i],
                action=action,
                score=composite,
                conviction=strength,
                confidence=confidence,
                target_price=target,
                expected_return=expected,
                factors=readings,
                thesis=narrative.thesis(
                    ticker=ticker,
                    action=action,
                    score=composite,
                    score_percentile=score_ranks[i],
                    universe=n,
                    readings=[(r.key, r.value, r.contribution, r.percentile) for r in readings],
                    sector=sector,
                    expected_return=expected,
                    horizon_days=spec.horizon_days,
                ),
                risk_factors=tuple(risks),
                methodology_disclosure=disclosure,
                data_sources=own_sources,
                model_version=spec.version,
                horizon_days=spec.horizon_days,
                history_days=histories[i],
                dollar_volume=dollar,
                recent_actions=recent_actions.get(ticker, ()),
            )
        )
    return calls


def run_model(
    panel: Panel,
    as_of: date,
    spec: s.ModelSpec,
    calibration: Calibration,
    *,
    hypothetical: bool = False,
) -> tuple[FactorFrame, list[Call]]:
    """The calls at ``as_of`` from the data up to it, with the frame they came from."""
    frame = compute_factors(panel, as_of, spec)
    sources = {t: panel.sources_of(t) for t in frame.tickers}
    calls = call_universe(
        frame,
        spec,
        calibration,
        sources=sources,
        recent_actions=recent_actions_of(panel, frame.as_of, spec),
        hypothetical=hypothetical,
    )
    return frame, calls
