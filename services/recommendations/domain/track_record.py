"""Judging calls after their horizon: outcomes, and the track record built from them.

Outcome of a call as of session ``t`` with a horizon of ``h`` sessions (the price panel's
calendar): ``realised = P[t+h] / P[t] - 1`` on adjusted closes, both read from the same
panel (so a split between them cancels out); ``benchmark`` is the same-window return of
the benchmark; ``excess = realised - benchmark``. The hit rule, per action:

- BUY: excess > 0;  SELL: excess < 0;
- HOLD: |excess| < 0.675 x the stock's own volatility over the horizon (the band a
  normal return falls in half the time: a coin flip scores 50% on every action).

Benchmark: market's universe index, total-return variant (dividends reinvested, like the
adjusted closes it is compared with), labelled ``market-index-total-return``; the panel
carries its levels (``Panel.benchmark``). Outcomes recorded before market served its index
keep their own label (``universe-equal-weight``, the universe's equal-weighted mean).

The information coefficient (IC) is Spearman's rank correlation between score and excess
return across the calls of one as-of date, averaged over dates (alphalens' ``factor
information coefficient``, mean); quantile returns are the mean excess return of each score
quintile within a date, averaged over dates.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import numpy as np
import numpy.typing as npt

from services.recommendations.domain import spec as s
from services.recommendations.domain.calls import Action
from services.recommendations.domain.factors import TRADING_DAYS_PER_YEAR, Panel
from services.recommendations.domain.scoring import conviction

FloatArray = npt.NDArray[np.float64]

BENCHMARK = "market-index-total-return"
HOLD_BAND = 0.675
HIT_RULES = {
    "BUY": "excess return over the benchmark > 0 over the horizon",
    "SELL": "excess return over the benchmark < 0 over the horizon",
    "HOLD": "|excess return| < 0.675 x the stock's volatility over the horizon",
}
METHODOLOGY = (
    "Every call whose horizon has passed is judged on split- and dividend-adjusted closes:"
    " realised return from the as-of session to the session horizon_days later, minus the"
    " benchmark's return over the same sessions. The benchmark is market's universe index,"
    " total-return variant (split-consistent market-value weights, dividends reinvested;"
    " market-index-total-return); outcomes judged before market served it are labelled"
    " universe-equal-weight (the equal-weighted mean return of the universe the model read)."
    " Calls without a close or an index level at either end are left unjudged."
    " Brier score: mean of (confidence - hit)^2. IC: Spearman rank correlation of score with"
    " excess return per as-of date, averaged over dates. Live and hypothetical (walk-forward"
    " backtest) calls are reported apart and never pooled; hypothetical performance was not"
    " achieved by anyone and has inherent limitations."
)
CONFIDENCE_BUCKETS = (0.0, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8, 1.0001)
QUANTILES = 5


@dataclass(frozen=True)
class Pending:
    """A published call still without an outcome."""

    recommendation_id: UUID
    ticker: str
    as_of: date
    action: Action
    horizon_days: int
    volatility: float | None


@dataclass(frozen=True)
class Matured:
    """A judged call, as the confidence fit reads it."""

    action: Action
    score: float
    hit: bool
    model_version: str
    matured_on: date


def pending_of(
    recommendation_id: UUID,
    ticker: str,
    as_of: date,
    action: Action,
    horizon_days: int,
    factors: Iterable[Mapping[str, Any]],
) -> Pending:
    """A published call as :func:`outcomes` reads it (its volatility from its factors)."""
    volatility = next((f["value"] for f in factors if f["key"] == s.VOLATILITY_63D), None)
    return Pending(recommendation_id, ticker, as_of, action, horizon_days, volatility)


@dataclass(frozen=True)
class Outcome:
    recommendation_id: UUID
    matured_on: date
    realised_return: float
    benchmark_return: float
    excess_return: float
    hit: bool
    benchmark: str


def is_hit(action: Action, excess: float, volatility: float | None, horizon_days: int) -> bool:
    if action is Action.BUY:
        return excess > 0
    if action is Action.SELL:
        return excess < 0
    if volatility is None or not math.isfinite(volatility):
        return False
    band = HOLD_BAND * volatility * math.sqrt(horizon_days / TRADING_DAYS_PER_YEAR)
    return abs(excess) < band


def outcomes(panel: Panel, pending: Sequence[Pending]) -> list[Outcome]:
    """The outcomes of the ``pending`` calls whose horizon has passed within ``panel``
    (none when the panel has no benchmark)."""
    if not pending:
        return []
    if panel.benchmark is None:
        return []  # nothing to measure excess returns against: judged on a later run
    closes, levels = panel.closes, panel.benchmark
    row = {t: i for i, t in enumerate(panel.tickers)}
    sessions = panel.sessions
    out = []
    for call in pending:
        i = row.get(call.ticker)
        start = int(np.searchsorted(sessions, np.datetime64(call.as_of, "D")))
        if i is None or start >= len(sessions) or sessions[start] != np.datetime64(call.as_of):
            continue
        end = start + call.horizon_days
        if end >= len(sessions):
            continue
        p0, p1 = closes[i, start], closes[i, end]
        if not (math.isfinite(p0) and math.isfinite(p1)) or p0 <= 0:
            continue  # no bar at one end (halted or delisted): left unjudged, not guessed
        realised = float(p1 / p0 - 1.0)
        bench = float(levels[end] / levels[start] - 1.0)
        if not math.isfinite(bench):
            continue
        excess = realised - bench
        out.append(
            Outcome(
                recommendation_id=call.recommendation_id,
                matured_on=sessions[end].astype(object),
                realised_return=realised,
                benchmark_return=bench,
                excess_return=excess,
                hit=is_hit(call.action, excess, call.volatility, call.horizon_days),
                benchmark=BENCHMARK,
            )
        )
    return out


# --- the record -------------------------------------------------------------------------


@dataclass(frozen=True)
class Judged:
    """A call with its outcome, as the track record reads it."""

    as_of: date
    action: Action
    confidence: float
    score: float
    sector: str | None
    model_version: str
    realised_return: float
    excess_return: float
    hit: bool
    benchmark: str = BENCHMARK  # what its excess return was measured against


def _group(rows: Sequence[Judged], key: Callable[[Judged], str]) -> dict[str, dict[str, object]]:
    groups: dict[str, list[Judged]] = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    return {
        name: {
            "calls": len(members),
            "hit_rate": round(sum(m.hit for m in members) / len(members), 4),
            "mean_return": round(float(np.mean([m.realised_return for m in members])), 6),
            "mean_excess_return": round(float(np.mean([m.excess_return for m in members])), 6),
        }
        for name, members in sorted(groups.items())
    }


def _bucket(confidence: float) -> str:
    for low, high in itertools.pairwise(CONFIDENCE_BUCKETS):
        if low <= confidence < high:
            return f"{low:.2f}-{min(high, 1.0):.2f}"
    return "unknown"


def _ranks(x: FloatArray) -> FloatArray:
    """Average ranks (ties share their mean rank), as scipy's rankdata does."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    unique, inverse = np.unique(x, return_inverse=True)
    if len(unique) < len(x):
        sums = np.bincount(inverse, weights=ranks)
        counts = np.bincount(inverse)
        ranks = (sums / counts)[inverse]
    return ranks


def spearman(a: FloatArray, b: FloatArray) -> float:
    if len(a) < 3:
        return math.nan
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def information_coefficient(rows: Iterable[Judged]) -> dict[str, Any]:
    by_day: dict[date, list[Judged]] = defaultdict(list)
    for r in rows:
        by_day[r.as_of].append(r)
    daily = {}
    quantiles: dict[int, list[float]] = defaultdict(list)
    for day, members in sorted(by_day.items()):
        scores = np.array([m.score for m in members])
        excess = np.array([m.excess_return for m in members])
        ic = spearman(scores, excess)
        if math.isfinite(ic):
            daily[day] = ic
        if len(members) >= QUANTILES:
            # Quintiles of the day's scores (1 = lowest) as alphalens' quantize_factor
            # (pandas qcut): right-closed bins between the empirical quantiles.
            edges = np.quantile(scores, np.linspace(0, 1, QUANTILES + 1))
            bins = np.searchsorted(edges[1:-1], scores, side="left")
            for q in range(QUANTILES):
                inside = bins == q
                if inside.any():
                    quantiles[q + 1].append(float(excess[inside].mean()))
    values = np.array(list(daily.values()))
    return {
        "dates": len(values),
        "mean": round(float(values.mean()), 6) if len(values) else None,
        "std": round(float(values.std(ddof=1)), 6) if len(values) > 1 else None,
        "t_stat": (
            round(float(values.mean() / (values.std(ddof=1) / math.sqrt(len(values)))), 3)
            if len(values) > 1 and values.std(ddof=1) > 0
            else None
        ),
        "quantile_mean_excess_return": {
            str(q): round(float(np.mean(v)), 6) for q, v in sorted(quantiles.items())
        },
    }


def record(rows: Sequence[Judged]) -> dict[str, Any]:
    """Every figure of the track record for one population (live, or hypothetical)."""
    if not rows:
        return {"calls": 0}
    confidence = np.array([r.confidence for r in rows])
    hits = np.array([r.hit for r in rows], dtype=np.float64)
    reliability = []
    for name, members in sorted(_by(rows, lambda r: _bucket(r.confidence)).items()):
        reliability.append(
            {
                "bucket": name,
                "calls": len(members),
                "mean_confidence": round(float(np.mean([m.confidence for m in members])), 4),
                "observed_hit_rate": round(float(np.mean([m.hit for m in members])), 4),
            }
        )
    return {
        "calls": len(rows),
        "first_as_of": min(r.as_of for r in rows).isoformat(),
        "last_as_of": max(r.as_of for r in rows).isoformat(),
        "hit_rate": round(float(hits.mean()), 4),
        "mean_excess_return": round(float(np.mean([r.excess_return for r in rows])), 6),
        "by_action": _group(rows, lambda r: r.action.value),
        "by_confidence": _group(rows, lambda r: _bucket(r.confidence)),
        "by_sector": _group(rows, lambda r: r.sector or "unknown"),
        "by_model_version": _group(rows, lambda r: r.model_version),
        "by_benchmark": _group(rows, lambda r: r.benchmark),
        "brier_score": round(float(np.mean((confidence - hits) ** 2)), 6),
        "reliability": reliability,
        "information_coefficient": information_coefficient(rows),
    }


def _by(rows: Sequence[Judged], key: Callable[[Judged], str]) -> dict[str, list[Judged]]:
    groups: dict[str, list[Judged]] = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    return groups


def calibration_inputs(
    rows: Iterable[Matured], specs: Mapping[str, s.ModelSpec]
) -> tuple[list[Action], list[float], list[bool]]:
    """Matured calls -> what the isotonic fit reads: each call's conviction under its own
    version's bands."""
    actions, convictions, hits = [], [], []
    for row in rows:
        spec = specs.get(row.model_version)
        if spec is None:
            continue
        actions.append(row.action)
        convictions.append(conviction(row.action, row.score, spec))
        hits.append(row.hit)
    return actions, convictions, hits
