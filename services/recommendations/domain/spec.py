"""The versioned model: which factors, with which weights, which bands, which horizon.

Everything that changes what a call says lives here and is named by ``version``, which
every call carries: a change of weights, bands, horizon or thresholds is a new version,
never an edit of an old one (the track record is kept per version).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class FactorSpec:
    key: str
    weight: float  # on the factor's cross-sectional z-score; the sign says which way is good
    label: str  # how the disclosure names it


@dataclass(frozen=True)
class ModelSpec:
    version: str
    factors: tuple[FactorSpec, ...]
    buy_at: float  # composite score at or above: BUY
    sell_at: float  # composite score at or below: SELL
    horizon_days: int  # trading sessions the call is about
    lookback_days: int  # sessions of history a call reads (its input window)
    min_history_days: int  # sessions with a close needed to be called at all
    max_stale_days: int  # a last close older than this many sessions: not called
    winsor_z: float  # z-scores are clipped to +/- this
    ic_prior: float  # information coefficient assumed for the expected return
    # Risk-factor rules (on the same data)
    high_volatility: float  # annualised
    deep_drawdown: float  # fraction below the 52-week high
    thin_liquidity_usd: float  # average daily dollar volume
    sector_concentration: float  # share of a run's BUY (or SELL) calls in one sector
    recent_action_days: int  # a split or dividend within this many calendar days
    low_confidence: float
    # Relative rules (mf-1.1 on; None: the rule does not exist in that version). A stock is
    # also flagged when it sits in this tail of the run's universe, whatever the absolute
    # thresholds above say: a risk is "unusual for this universe" as well as "large".
    tail: float | None = None  # 0.10: the top (or bottom) 10% of the universe
    extreme_tail: float | None = None  # momentum beyond this tail: an extreme mover
    relative_min_universe: int | None = None  # fewer stocks called: no relative rules
    extreme_gain: float | None = None  # 12-1 return at or above: an extreme mover
    extreme_loss: float | None = None  # 12-1 return at or below (negative)

    def weight_of(self, key: str) -> float:
        return next(f.weight for f in self.factors if f.key == key)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(f.key for f in self.factors)


MOMENTUM_12_1 = "momentum_12_1"
MOMENTUM_6M = "momentum_6m"
TREND_200D = "trend_200d"
RSI_14 = "rsi_14"
VOLATILITY_63D = "volatility_63d"
DRAWDOWN_252D = "drawdown_252d"
LIQUIDITY_21D = "liquidity_21d"
SECTOR_RELATIVE_6M = "sector_relative_6m"

# Weights sum to 1 in absolute value. Momentum (12-1 and 6-month) and trend carry most of
# the score, as in the literature the model follows (Jegadeesh & Titman 1993; Moskowitz &
# Grinblatt 1999 for the sector-relative leg); short-term reversal, low volatility and a
# shallow drawdown temper it; liquidity only nudges.
V1 = ModelSpec(
    version="mf-1.0",
    factors=(
        FactorSpec(MOMENTUM_12_1, 0.25, "12-1 month momentum"),
        FactorSpec(MOMENTUM_6M, 0.15, "6-month momentum"),
        FactorSpec(TREND_200D, 0.15, "price versus its 200-day average"),
        FactorSpec(RSI_14, -0.10, "short-term reversal (14-day RSI, high is bad)"),
        FactorSpec(VOLATILITY_63D, -0.10, "3-month volatility (high is bad)"),
        FactorSpec(DRAWDOWN_252D, 0.10, "distance from the 52-week high (deep is bad)"),
        FactorSpec(LIQUIDITY_21D, 0.05, "1-month average dollar volume (log)"),
        FactorSpec(SECTOR_RELATIVE_6M, 0.10, "6-month return relative to its sector"),
    ),
    buy_at=0.75,
    sell_at=-0.75,
    horizon_days=21,
    lookback_days=260,
    min_history_days=63,
    max_stale_days=5,
    winsor_z=3.0,
    ic_prior=0.05,
    high_volatility=0.60,
    deep_drawdown=0.30,
    thin_liquidity_usd=1_000_000.0,
    sector_concentration=0.30,
    recent_action_days=30,
    low_confidence=0.55,
)

# mf-1.1: the same model, with risk factors a newcomer would expect (the top BUY of a demo
# run, +435% over 12-1 months, had none): extreme movers, and every rule relative to the
# universe as well as absolute (in runs of 100 stocks or more: the tails of a handful of
# stocks say little). Calibrated on the simulated universe (docs/market.md), latest
# run of the demo: volatility median 39%, 90th percentile 76%; drawdown median -23%, 10th
# percentile -55%; dollar volume median $2.5M, 10th percentile $180K; 12-1 momentum 5th and
# 95th percentiles -55% and +112%, 1st and 99th -74% and +294%.
V1_1 = replace(
    V1,
    version="mf-1.1",
    tail=0.10,
    extreme_tail=0.01,
    relative_min_universe=100,
    extreme_gain=1.00,
    extreme_loss=-0.50,
)

CURRENT = V1_1
SPECS = {spec.version: spec for spec in (V1, V1_1)}
