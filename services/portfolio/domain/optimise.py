"""Optimised target weights: minimum variance and risk parity (equal risk contributions),
long-only and fully invested, on a Ledoit-Wolf shrunk covariance of daily returns. Pure:
no I/O; CPU-bound (the caller runs it off the event loop).

The solving is skfolio's (``MeanRisk`` minimising variance, ``RiskBudgeting`` with equal
budgets, both on ``EmpiricalPrior(covariance_estimator=LedoitWolf())``); why that library,
and the exact inputs, in docs/portfolio.md ("Optimised targets"). skfolio is imported when
first used: it brings scikit-learn and cvxpy, ~1.3 s to import, which a service that never
optimises should not pay at start-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from services.portfolio.domain.ledger import WEIGHT, ZERO

Floats = npt.NDArray[np.float64]
# Clarabel's tolerances, tighter than its defaults (1e-8 gaps leave weights ~2e-5 off the
# optimum): targets are written to 6 places, so the solution must be good to ~1e-6.
SOLVER = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}
# Fewer days of returns common to every ticker than this cannot estimate a covariance
# worth trading on.
MIN_OBSERVATIONS = 60


class Method(StrEnum):
    MIN_VARIANCE = "min_variance"
    RISK_PARITY = "risk_parity"


class OptimiseRejected(Exception):
    def __init__(self, reason: str, message: str, **details: object) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.details = details


def common_returns(returns: Floats, tickers: Sequence[str]) -> Floats:
    """The days on which every ticker has a return (rows without NaN); refused when a
    ticker has fewer than :data:`MIN_OBSERVATIONS` of them, or they have together."""
    counts = (~np.isnan(returns)).sum(axis=0)
    short = sorted(t for t, n in zip(tickers, counts, strict=True) if n < MIN_OBSERVATIONS)
    if short:
        raise OptimiseRejected(
            "INSUFFICIENT_HISTORY",
            f"The optimiser needs at least {MIN_OBSERVATIONS} daily returns of every ticker.",
            tickers=short,
        )
    rows: Floats = returns[~np.isnan(returns).any(axis=1)]
    if len(rows) < MIN_OBSERVATIONS:
        raise OptimiseRejected(
            "INSUFFICIENT_HISTORY",
            f"The tickers have fewer than {MIN_OBSERVATIONS} days of returns in common.",
            tickers=sorted(tickers),
        )
    return rows


def _model(method: Method) -> Any:
    from skfolio import RiskMeasure
    from skfolio.moments import LedoitWolf
    from skfolio.optimization import MeanRisk, ObjectiveFunction, RiskBudgeting
    from skfolio.prior import EmpiricalPrior

    prior = EmpiricalPrior(covariance_estimator=LedoitWolf())
    if method is Method.MIN_VARIANCE:
        return MeanRisk(
            objective_function=ObjectiveFunction.MINIMIZE_RISK,
            risk_measure=RiskMeasure.VARIANCE,
            prior_estimator=prior,
            solver_params=SOLVER,
        )
    return RiskBudgeting(
        risk_measure=RiskMeasure.VARIANCE, prior_estimator=prior, solver_params=SOLVER
    )


def optimise(method: Method, returns: Floats) -> tuple[Floats, Floats]:
    """Long-only weights summing to 1 for the columns of ``returns`` (days x tickers, no
    NaN), and the covariance they were solved on (daily, Ledoit-Wolf)."""
    if returns.shape[1] == 1:
        return np.ones(1), np.atleast_2d(np.var(returns, ddof=0))
    model = _model(method)
    model.fit(returns)
    weights = np.asarray(model.weights_, dtype=np.float64)
    cov = np.asarray(model.prior_estimator_.return_distribution_.covariance, dtype=np.float64)
    if not np.all(np.isfinite(weights)) or weights.sum() <= 0:
        raise OptimiseRejected("OPTIMISER_FAILED", "The optimiser found no solution.")
    weights = np.clip(weights, 0.0, None)
    return weights / weights.sum(), cov


def warm() -> None:
    """Import skfolio and solve a tiny problem of each method, so the first proposal a user
    asks for does not pay the import and the solvers' first set-up (seconds under load)."""
    rng = np.random.default_rng(0)
    returns = rng.normal(0.0, 0.01, (MIN_OBSERVATIONS, 3))
    for method in Method:
        optimise(method, returns)


def to_targets(tickers: Sequence[str], weights: Floats) -> dict[str, Decimal]:
    """Weights as target fractions of 6 places, rounded down so they never sum above 1
    (a weight below 10^-6 is 0: the ticker is sold)."""
    return {
        t: Decimal(repr(float(w))).quantize(WEIGHT, rounding=ROUND_DOWN) if w > 0 else ZERO
        for t, w in zip(tickers, weights, strict=True)
    }
