"""The risk x-ray's figures (no database): the daily series against pandas, volatility,
beta and drawdown against empyrical on the same series, concentration by hand."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

import empyrical
import numpy as np
import pandas as pd
import pytest

from services.portfolio.domain.performance import IndexLevels
from services.portfolio.domain.xray import (
    MIN_RETURNS,
    Holdings,
    Limits,
    daily_returns,
    history_of,
    xray,
)

D = Decimal
LIMITS = Limits(D("0.4"), D("0.5"))


def _walk(rng: np.random.Generator, days: list[date], vol: float) -> list[tuple[date, float]]:
    levels = 50.0 * np.cumprod(1.0 + rng.normal(0.0005, vol, len(days)))
    return [(d, round(float(c), 4)) for d, c in zip(days, levels, strict=True)]


def _business_days(start: date, count: int) -> list[date]:
    days: list[date] = []
    day = start
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


@pytest.fixture
def market() -> tuple[dict[str, list[tuple[date, float]]], IndexLevels]:
    rng = np.random.default_rng(7)
    days = _business_days(date(2025, 1, 2), 120)
    closes = {
        "AAA": _walk(rng, days, 0.02),
        "BBB": _walk(rng, days, 0.01),
        # Listed later, and missing a day in the middle (carried forward).
        "CCC": [p for i, p in enumerate(_walk(rng, days, 0.03)) if i >= 30 and i != 70],
    }
    index = IndexLevels(days, [float(v) for v in 1000 * np.cumprod(1 + rng.normal(0, 0.01, 120))])
    return closes, index


def test_the_daily_series_is_the_weighted_sum_of_the_holdings_returns(
    market: tuple[dict[str, list[tuple[date, float]]], IndexLevels],
) -> None:
    closes, index = market
    tickers = ["AAA", "BBB", "CCC", "NONE"]
    history = history_of(closes, tickers, index)
    weights = {"AAA": 0.5, "BBB": 0.2, "CCC": 0.25, "NONE": 0.05}
    frame = pd.DataFrame(
        {t: pd.Series(dict(closes.get(t, [])), dtype=float) for t in tickers}
    ).sort_index()
    expected = frame.ffill().pct_change(fill_method=None).iloc[1:].fillna(0.0) @ pd.Series(weights)
    got = daily_returns(weights, history)
    assert history.days == list(expected.index)
    np.testing.assert_allclose(got, expected.to_numpy(), rtol=0, atol=1e-15)
    assert history.missing == ["NONE"]


def test_volatility_beta_and_drawdown_agree_with_empyrical(
    market: tuple[dict[str, list[tuple[date, float]]], IndexLevels],
) -> None:
    closes, index = market
    holdings = Holdings(
        {"AAA": D("5000"), "BBB": D("2000"), "CCC": D("2500")},
        {"AAA": "Tech", "BBB": "Energy", "CCC": "Tech"},
        D("500"),
    )
    history = history_of(closes, sorted(holdings.values), index)
    figures = xray(holdings, LIMITS, history, None)
    weights = {"AAA": 0.5, "BBB": 0.2, "CCC": 0.25}
    series = daily_returns(weights, history)
    levels = pd.Series(index.levels, index=index.days)
    market_returns = levels.pct_change().reindex(history.days).to_numpy()
    risk = figures.risk
    assert risk.available and risk.days == 119 and risk.short_history == ["CCC"]
    assert risk.volatility == pytest.approx(empyrical.annual_volatility(series), rel=1e-12)
    assert risk.beta == pytest.approx(empyrical.beta(series, market_returns), rel=1e-10)
    assert risk.max_drawdown == pytest.approx(empyrical.max_drawdown(series), rel=1e-12)
    # Volatility of constant weights is also sqrt(w' C w x 252), C the sample covariance.
    matrix = np.nan_to_num(history.returns)
    w = np.array([0.5, 0.2, 0.25])
    assert risk.volatility == pytest.approx(float(np.sqrt(w @ np.cov(matrix.T) @ w * 252)))


def test_concentration_beyond_the_limits_and_sell_calls_by_hand() -> None:
    holdings = Holdings(
        {"AAA": D("450"), "BBB": D("300"), "CCC": D("150"), "DDD": D("60")},
        {"AAA": "Tech", "BBB": "Tech", "CCC": None, "DDD": None},
        D("40"),
    )
    sell = uuid.uuid4()
    calls = {"BBB": ("SELL", 0.7, sell), "CCC": ("BUY", 0.9, uuid.uuid4())}
    figures = xray(holdings, LIMITS, None, calls, history_note="market down")
    # V = 1000: AAA 0.45 > 0.4; Tech 0.75 > 0.5; UNCLASSIFIED 0.21 is never flagged.
    assert [(b.name, b.weight, b.excess) for b in figures.positions_over_limit] == [
        ("AAA", D("0.45"), D("0.05"))
    ]
    assert [(b.name, b.excess) for b in figures.sectors_over_limit] == [("Tech", D("0.25"))]
    assert figures.sector_weights == {"Tech": D("0.75"), "UNCLASSIFIED": D("0.21")}
    assert figures.cash_weight == D("0.04") and figures.largest_position == ("AAA", D("0.45"))
    assert figures.effective_positions == pytest.approx(
        0.96**2 / (0.45**2 + 0.3**2 + 0.15**2 + 0.06**2)
    )
    assert [(s.ticker, s.weight, s.recommendation_id) for s in figures.sells or []] == [
        ("BBB", D("0.3"), sell)
    ]
    assert not figures.risk.available and figures.risk.note == "market down"
    assert xray(holdings, LIMITS, None, None).sells is None  # recommendations away


def test_too_little_history_withholds_the_risk_figures(
    market: tuple[dict[str, list[tuple[date, float]]], IndexLevels],
) -> None:
    closes, index = market
    short = {"AAA": closes["AAA"][:MIN_RETURNS]}
    history = history_of(short, ["AAA"], index)
    figures = xray(Holdings({"AAA": D(1)}, {}, D(0)), LIMITS, history, None)
    assert not figures.risk.available and figures.risk.volatility is None
    empty = xray(Holdings({}, {}, D(100)), LIMITS, history_of(closes, [], index), None)
    assert not empty.risk.available and empty.weights == {} and empty.cash_weight == 1
