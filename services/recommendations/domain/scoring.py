"""From factor values to scores, actions and target prices, for a whole cross-section.

Each factor is standardised across the universe (z-score, clipped at ``spec.winsor_z``; a
missing value counts as the average, 0, and is reported as missing). The composite is the
weighted sum of the z-scores, rescaled to unit cross-sectional standard deviation so the
bands mean the same thing whatever the universe: a factor's *contribution* is its weighted
z-score on that scale, and the contributions add up to the score exactly.

The expected excess return over the horizon follows Grinold's rule of thumb,
``alpha = IC x volatility over the horizon x score``, with the specification's prior IC;
the target price is the price at the call grown by it. It is an excess return over the
market (the market itself is assumed flat), so targets sit close to the price: the model
ranks stocks, it does not forecast the market.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.recommendations.domain import spec as s
from services.recommendations.domain.calls import Action
from services.recommendations.domain.factors import TRADING_DAYS_PER_YEAR, FactorFrame

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Scores:
    z: FloatArray  # [securities, factors]; 0 where the value is missing
    contributions: FloatArray  # [securities, factors]; rows sum to ``score``
    score: FloatArray  # [securities]
    percentile: FloatArray  # [securities, factors]: rank of the raw value in (0, 1]; NaN: missing
    score_percentile: FloatArray  # [securities]
    actions: tuple[Action, ...]
    expected_return: FloatArray  # excess over the horizon; NaN: volatility unknown
    target_price: FloatArray  # NaN: no target


def zscores(values: FloatArray, clip: float) -> FloatArray:
    """Column-wise cross-sectional z-scores; missing values and constant columns give 0."""
    valid = ~np.isnan(values)
    count = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, np.nansum(values, axis=0) / np.maximum(count, 1), 0.0)
        centred = np.where(valid, values - mean, 0.0)
        var = (centred**2).sum(axis=0) / np.maximum(count - 1, 1)
        std = np.sqrt(var)
        z = np.where((std > 0) & valid, centred / np.where(std > 0, std, 1.0), 0.0)
    return np.clip(z, -clip, clip)


def percentiles(values: FloatArray) -> FloatArray:
    """Rank of each value within its column, as a fraction in (0, 1]; ties share the
    higher rank; NaN stays NaN."""
    out = np.full(values.shape, np.nan)
    for j in range(values.shape[1]):
        column = values[:, j]
        valid = ~np.isnan(column)
        if valid.any():
            ordered = np.sort(column[valid])
            out[valid, j] = np.searchsorted(ordered, column[valid], side="right") / valid.sum()
    return out


def score(frame: FactorFrame, spec: s.ModelSpec) -> Scores:
    if frame.keys != spec.keys:
        raise ValueError("the frame's factors are not the specification's")
    weights = np.array([f.weight for f in spec.factors])
    z = zscores(frame.values, spec.winsor_z)
    weighted = z * weights
    raw = weighted.sum(axis=1)
    spread = float(np.std(raw, ddof=1)) if len(raw) > 1 else 0.0
    scale = 1.0 / spread if spread > 0 else 1.0
    contributions = weighted * scale
    composite = contributions.sum(axis=1)
    actions = tuple(
        Action.BUY if x >= spec.buy_at else Action.SELL if x <= spec.sell_at else Action.HOLD
        for x in composite
    )
    vol = frame.values[:, spec.keys.index(s.VOLATILITY_63D)]
    horizon_vol = vol * np.sqrt(spec.horizon_days / TRADING_DAYS_PER_YEAR)
    expected = spec.ic_prior * horizon_vol * composite
    target = frame.prices * (1.0 + expected)
    return Scores(
        z=z,
        contributions=contributions,
        score=composite,
        percentile=percentiles(frame.values),
        score_percentile=percentiles(composite[:, None])[:, 0],
        actions=actions,
        expected_return=expected,
        target_price=target,
    )


def conviction(action: Action, score: float, spec: s.ModelSpec) -> float:
    """How far a score sits inside its action's band (0 at the band's edge): the variable
    confidence is a monotone function of."""
    if action is Action.BUY:
        return score - spec.buy_at
    if action is Action.SELL:
        return spec.sell_at - score
    return min(spec.buy_at - score, score - spec.sell_at)
