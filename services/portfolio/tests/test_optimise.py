"""Optimised and recommendation-driven targets (no database): the optimiser's covariance
against the Ledoit-Wolf formula written out in numpy, minimum variance against its closed
form, risk parity by its defining property; the recommendation rule by hand; and every
proposal towards such targets respects every constraint."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.portfolio.domain import optimise as opt
from services.portfolio.domain.rebalance import Constraints, Holding
from services.portfolio.domain.targets import follow, impact_target
from services.portfolio.tests.test_rebalance import cases, check_constraints

D = Decimal


def ledoit_wolf(x: np.ndarray) -> np.ndarray:
    """Ledoit & Wolf (2004), shrinkage towards m x I, as in the paper (norms / p)."""
    n, p = x.shape
    x = x - x.mean(axis=0)
    s = x.T @ x / n
    m = np.trace(s) / p
    d2 = np.sum((s - m * np.eye(p)) ** 2) / p
    b2_bar = sum(np.sum((np.outer(row, row) - s) ** 2) / p for row in x) / n**2
    b2 = min(b2_bar, d2)
    shrunk: np.ndarray = (b2 / d2) * m * np.eye(p) + (1 - b2 / d2) * s
    return shrunk


def returns(
    seed: int, n: int = 250, vols: tuple[float, ...] = (0.01, 0.015, 0.02, 0.03)
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 0.004, (n, 1))
    drawn: np.ndarray = common + rng.normal(0, 1, (n, len(vols))) * np.array(vols)
    return drawn


def test_minimum_variance_is_the_closed_form_when_long_only_does_not_bind() -> None:
    x = returns(1)
    weights, cov = opt.optimise(opt.Method.MIN_VARIANCE, x)
    np.testing.assert_allclose(cov, ledoit_wolf(x), rtol=1e-10, atol=1e-14)
    inverse = np.linalg.solve(cov, np.ones(4))
    expected = inverse / inverse.sum()
    assert (expected > 0).all()  # the long-only constraint is inactive here
    np.testing.assert_allclose(weights, expected, atol=2e-6)
    assert weights.sum() == pytest.approx(1.0)


def test_minimum_variance_stays_long_only_when_the_closed_form_shorts() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(0, 0.01, (250, 1))
    # B is A with more noise: the unconstrained solution shorts it.
    x = np.hstack(
        [base, base * 1.5 + rng.normal(0, 0.002, (250, 1)), rng.normal(0, 0.02, (250, 1))]
    )
    weights, cov = opt.optimise(opt.Method.MIN_VARIANCE, x)
    inverse = np.linalg.solve(cov, np.ones(3))
    assert (inverse / inverse.sum()).min() < 0
    assert weights.min() >= 0 and weights.sum() == pytest.approx(1.0)
    # No long-only portfolio on the same covariance has a lower variance (a grid check).
    best = weights @ cov @ weights
    grid = [
        np.array([a, b, 1 - a - b])
        for a in np.linspace(0, 1, 41)
        for b in np.linspace(0, 1, 41)
        if a + b <= 1
    ]
    assert best <= min(w @ cov @ w for w in grid) + 1e-12


def test_risk_parity_equalises_risk_contributions() -> None:
    x = returns(2)
    weights, cov = opt.optimise(opt.Method.RISK_PARITY, x)
    contributions = weights * (cov @ weights)
    np.testing.assert_allclose(contributions / contributions.sum(), 0.25, atol=1e-5)
    # Less volatile assets get more weight.
    assert list(np.argsort(-weights)) == [0, 1, 2, 3]


def test_too_little_common_history_is_refused() -> None:
    x = returns(4, n=100)
    x[:50, 2] = np.nan
    with pytest.raises(opt.OptimiseRejected) as refused:
        opt.common_returns(x, ["A", "B", "C", "D"])
    assert refused.value.reason == "INSUFFICIENT_HISTORY" and refused.value.details == {
        "tickers": ["C"]
    }
    assert opt.common_returns(x[:, [0, 1, 3]], ["A", "B", "D"]).shape == (100, 3)


def test_targets_round_down_and_never_sum_above_one() -> None:
    targets = opt.to_targets(["A", "B", "C"], np.array([1 / 3, 1 / 3, 1 / 3]))
    assert targets == {"A": D("0.333333"), "B": D("0.333333"), "C": D("0.333333")}
    assert opt.to_targets(["A", "B"], np.array([1e-9, 1 - 1e-9]))["A"] == 0


def test_following_the_recommendations_by_hand() -> None:
    calls = {"A": ("BUY", 0.8), "B": ("HOLD", 0.6), "C": ("SELL", 0.9)}
    # Scores: A 1 + 0.8 = 1.8, B 1, C 0, D (no call) 1: sum 3.8.
    assert follow(calls, ["A", "B", "C", "D"], D(1)) == {
        "A": D("0.473684"),
        "B": D("0.263157"),
        "C": D(0),
        "D": D("0.263157"),
    }
    assert follow(calls, ["A", "B"], D(0)) == {"A": D("0.5"), "B": D("0.5")}
    assert follow({"C": ("SELL", 0.5)}, ["C"], D(1)) == {"C": D(0)}


def test_the_impact_rule() -> None:
    assert impact_target("SELL", D("0.2"), D("0.02"), D("0.1")) == 0
    assert impact_target("BUY", D("0.05"), D("0.02"), D("0.1")) == D("0.07")
    assert impact_target("BUY", D("0.09"), D("0.02"), D("0.1")) == D("0.1")
    assert impact_target("BUY", D("0.15"), D("0.02"), D("0.1")) == D("0.15")  # never sells
    assert impact_target("HOLD", D("0.05"), D("0.02"), D("0.1")) is None


ACTIONS = st.sampled_from(["BUY", "HOLD", "SELL"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cases(),
    st.lists(st.tuples(ACTIONS, st.floats(0, 1)), min_size=8, max_size=8),
    st.integers(0, 2),
)
def test_proposals_towards_derived_targets_respect_every_constraint(
    case: tuple[list[Holding], Decimal, dict[str, Decimal], dict[str, Decimal], Constraints],
    calls: list[tuple[str, float]],
    kind: int,
) -> None:
    holdings, cash, prices, targets, c = case
    chosen = sorted(targets)
    if kind == 0:  # follow the recommendations
        derived = follow(dict(zip(sorted(prices), calls, strict=True)), chosen, D(1))
    else:  # an optimiser on made-up history (seeded by the case: deterministic)
        x = returns(
            len(chosen) + int(cash), vols=tuple(0.01 + 0.003 * i for i in range(len(chosen)))
        )
        method = opt.Method.MIN_VARIANCE if kind == 1 else opt.Method.RISK_PARITY
        weights, _ = opt.optimise(method, x)
        derived = opt.to_targets(chosen, weights)
    assert sum(derived.values()) <= 1
    check_constraints(holdings, cash, prices, derived, c)
