"""Pure market logic: adjustment, the simulator, bar validation, resampling, statistics."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from services.market.domain import TICKER_PATTERN, calendar, normalise_ticker
from services.market.domain import simulator as sim
from services.market.domain.adjustment import Action, adjust, dividend_factor, factors
from services.market.domain.bars import resample, validate
from services.market.domain.overview import sector_performance
from services.market.domain.sectors import SECTORS
from services.market.domain.statistics import (
    chain_index,
    index_contribution,
    percentile_ranks,
    period_returns,
)

D = np.datetime64


def days(*isos: str) -> np.ndarray:
    return np.array(isos, dtype="datetime64[D]")


def test_split_adjustment_divides_earlier_prices_and_multiplies_volume() -> None:
    d = days("2024-06-03", "2024-06-04", "2024-06-05", "2024-06-06")
    close = np.array([200.0, 204.0, 101.0, 103.0])  # 2-for-1 effective 2024-06-05
    volume = np.array([1000, 1000, 2000, 2000])
    (adj_close,), adj_volume = adjust(d, (close,), volume, [Action(date(2024, 6, 5), "split", 2.0)])
    np.testing.assert_allclose(adj_close, [100.0, 102.0, 101.0, 103.0])
    np.testing.assert_allclose(adj_volume, [2000, 2000, 2000, 2000])


def test_dividend_adjustment_uses_the_previous_close() -> None:
    d = days("2024-03-07", "2024-03-08", "2024-03-11")
    close = np.array([50.0, 50.0, 49.2])
    factor = dividend_factor(1.0, previous_close=50.0)  # ex-date 2024-03-11
    assert factor == pytest.approx(0.98)
    actions = [Action(date(2024, 3, 11), "dividend", 1.0, factor)]
    (adj_close,), adj_volume = adjust(d, (close,), np.array([10, 10, 10]), actions)
    np.testing.assert_allclose(adj_close, [49.0, 49.0, 49.2])
    np.testing.assert_allclose(adj_volume, [10, 10, 10])  # dividends do not touch volume


def test_factors_compound_backwards_and_skip_unknown_dividends() -> None:
    d = days("2024-01-02", "2024-02-01", "2024-03-01", "2024-04-01")
    actions = [
        Action(date(2024, 2, 1), "split", 4.0),
        Action(date(2024, 3, 1), "dividend", 0.5, 0.99),
        Action(date(2024, 4, 1), "dividend", 0.5, None),  # no previous close known yet
    ]
    price, volume = factors(d, actions)
    np.testing.assert_allclose(price, [0.25 * 0.99, 0.99, 1.0, 1.0])
    np.testing.assert_allclose(volume, [4.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError):
        dividend_factor(60.0, previous_close=50.0)


@pytest.fixture(scope="module")
def universe() -> sim.Universe:
    spec = sim.UniverseSpec(
        size=300, sessions=calendar.sessions(date(2019, 1, 2), date(2024, 12, 31)), seed=11
    )
    return sim.build_universe(spec)


def test_simulated_securities_are_valid_unique_and_cover_every_sector(
    universe: sim.Universe,
) -> None:
    tickers = [s.ticker for s in universe.securities]
    assert len(set(tickers)) == len(tickers)
    assert all(normalise_ticker(t) == t for t in tickers), TICKER_PATTERN
    assert not set(tickers) & sim.RESERVED_TICKERS
    assert {s.sector for s in universe.securities} == set(SECTORS)
    assert all(s.industry in SECTORS[s.sector] for s in universe.securities)
    assert universe.delisted.any() and (universe.first_day > 0).any()


def test_simulation_is_deterministic_and_independent_of_chunking(universe: sim.Universe) -> None:
    factors_ = sim.factor_paths(universe.spec)
    whole = sim.simulate_bars(universe, factors_, 0, 20)
    part = sim.simulate_bars(universe, factors_, 10, 20)
    again = sim.simulate_bars(
        sim.build_universe(universe.spec), sim.factor_paths(universe.spec), 10, 20
    )
    rows = whole.security >= 10
    np.testing.assert_array_equal(whole.close[rows], part.close)
    np.testing.assert_array_equal(part.volume, again.volume)
    assert part.actions == again.actions


def test_simulated_bars_are_consistent_and_realistic(universe: sim.Universe) -> None:
    bars = sim.simulate_bars(universe, sim.factor_paths(universe.spec), 0, 300)
    assert (bars.low > 0).all() and (bars.low <= np.minimum(bars.open, bars.close)).all()
    assert (bars.high >= np.maximum(bars.open, bars.close)).all() and (bars.volume > 0).all()
    # Every bar is on an NYSE session.
    assert calendar.session_mask(universe.spec.sessions[bars.day]).all()
    kinds = {kind for _, _, kind, _, _ in bars.actions}
    assert kinds == {"split", "dividend"}
    # Fat tails and volatility clustering in the daily returns of the named securities.
    kurtosis, clustering = [], []
    for i in range(13):
        rows = bars.security == i
        r = np.diff(np.log(bars.close[rows]))
        r = r[np.abs(r) < 0.5]  # ignore split days (raw prices)
        z = (r - r.mean()) / r.std()
        kurtosis.append(float(np.mean(z**4)))
        sq = r**2 - np.mean(r**2)
        clustering.append(float(np.dot(sq[1:], sq[:-1]) / np.dot(sq, sq)))
    assert np.median(kurtosis) > 3.5  # a normal distribution has 3
    assert np.median(clustering) > 0.02  # squared returns are autocorrelated


def test_adjusted_simulated_closes_follow_the_model_returns_across_actions(
    universe: sim.Universe,
) -> None:
    """On an ex-date the simulator moves the reference price exactly as the adjustment
    factors undo it, so adjusted day-on-day returns never jump on an action day."""
    bars = sim.simulate_bars(universe, sim.factor_paths(universe.spec), 0, 300)
    by_security: dict[int, list[Action]] = {}
    for i, t, kind, value, factor in bars.actions:
        by_security.setdefault(i, []).append(
            Action(calendar.to_date(universe.spec.sessions[t]), kind, value, factor)  # type: ignore[arg-type]
        )
    checked = 0
    for i, actions in by_security.items():
        if not any(a.kind == "split" for a in actions):
            continue
        rows = bars.security == i
        d = universe.spec.sessions[bars.day[rows]]
        (adj_close,), _ = adjust(d, (bars.close[rows],), bars.volume[rows], actions)
        raw_move = np.abs(np.diff(np.log(bars.close[rows])))
        adj_move = np.abs(np.diff(np.log(adj_close)))
        for action in actions:
            if action.kind != "split":
                continue
            k = int(np.searchsorted(d, np.datetime64(action.ex_date, "D"))) - 1
            # A 2-for-1 or more is a >50% raw move on the ex-date; adjusted, an ordinary day.
            assert raw_move[k] > 0.5 > adj_move[k]
            assert adj_move[k] == pytest.approx(
                abs(np.log(bars.close[rows][k + 1] * action.value / bars.close[rows][k]))
            )
        checked += 1
    assert checked > 0


def test_validation_rejects_each_bad_row_with_its_reason() -> None:
    d = days(
        "2024-01-02",
        "2024-01-03",
        "2024-01-04",
        "2024-01-05",
        "2024-01-06",
        "2024-01-08",
        "2024-01-08",
        "2030-01-02",
        "2024-01-09",
    )
    nan = float("nan")
    o = np.array([10, 10, 10, 10, 10, 10, 10, 10, nan])
    h = np.array([11, 9, 11, 11, 11, 11, 11, 11, 11.0])
    lo = np.array([9, 10, 9, 9, 9, 9, 9, 9, 9.0])
    c = np.array([10.5, 10, 12, 10, 10, 10, 10, 10, 10])
    v = np.array([100, 100, 100, -1, 100, 100, 100, 100, 100.0])
    result = validate(np.zeros(len(d), dtype=np.int64), d, o, h, lo, c, v, today=date(2025, 1, 1))
    assert result.reasons == [
        None,
        "high_below_low",
        "close_outside_range",
        "negative_volume",
        "not_a_session",  # a Saturday
        None,
        "duplicate_day",
        "future_date",
        "not_a_number",
    ]


def test_weekly_and_monthly_resampling() -> None:
    d = days("2024-01-29", "2024-01-31", "2024-02-01", "2024-02-02", "2024-02-05")
    o = np.array([1.0, 2, 3, 4, 5])
    h = np.array([10.0, 20, 30, 40, 50])
    lo = np.array([0.5, 1.5, 2.5, 3.5, 4.5])
    c = np.array([1.5, 2.5, 3.5, 4.5, 5.5])
    v = np.array([1, 2, 3, 4, 5])
    week = resample(d, o, h, lo, c, v, "weekly")
    assert week.period.astype(str).tolist() == ["2024-01-29", "2024-02-05"]
    assert week.open.tolist() == [1.0, 5.0] and week.close.tolist() == [4.5, 5.5]
    assert week.high.tolist() == [40.0, 50.0] and week.volume.tolist() == [10.0, 5.0]
    month = resample(d, o, h, lo, c, v, "monthly")
    assert month.period.astype(str).tolist() == ["2024-01-01", "2024-02-01"]
    assert month.last_day.astype(str).tolist() == ["2024-01-31", "2024-02-05"]
    assert month.low.tolist() == [0.5, 2.5]


def test_period_returns_use_calendar_offsets() -> None:
    d = calendar.sessions(date(2023, 1, 3), date(2024, 6, 28))
    close = np.arange(1, len(d) + 1, dtype=np.float64)
    r = period_returns(d, close)
    last = close[-1]
    # 1w: the last close on or before 2024-06-21; ytd: the last close of 2023.
    assert r["1w"] == pytest.approx(last / close[d <= D("2024-06-21")][-1] - 1)
    assert r["ytd"] == pytest.approx(last / close[d <= D("2023-12-31")][-1] - 1)
    assert r["1y"] == pytest.approx(last / close[d <= D("2023-06-28")][-1] - 1)
    assert period_returns(d[-3:], close[-3:])["1m"] is None  # history too short


def test_percentile_ranks_average_ties_and_keep_nan() -> None:
    ranks = percentile_ranks(np.array([3.0, 1.0, np.nan, 3.0, 2.0]))
    np.testing.assert_allclose(
        ranks[[0, 1, 3, 4]], [83.333333, 0.0, 83.333333, 33.333333], rtol=1e-6
    )
    assert np.isnan(ranks[2])


def test_a_split_changes_neither_index_weights_nor_index_returns() -> None:
    sessions = days("2024-06-03", "2024-06-04", "2024-06-05")
    # Security 1 splits 10-for-1 on 2024-06-05 and does not move; security 2 rises 10 %.
    # 1 has 1,000 shares today (100 before the split), 2 has 100.
    ids = np.array([1, 1, 1, 2, 2, 2], dtype=np.int32)
    d = np.concatenate([sessions, sessions])
    close = np.array([1000.0, 1000.0, 100.0, 100.0, 100.0, 110.0])
    part = index_contribution(
        sessions,
        ids,
        d,
        close,
        {1: 1000.0, 2: 100.0},
        {1: [Action(date(2024, 6, 5), "split", 10.0)]},
    )
    # Weights = market values the session before: 100,000 (1) + 10,000 (2).
    assert part.weights[2] == pytest.approx(110_000.0)
    levels, total, count = chain_index(part)
    # The split is not a fall of 90 %: the index rises by 2's weight x 10 %.
    assert levels[2] / levels[1] == pytest.approx(1.0 + 10_000 / 110_000 * 0.10)
    np.testing.assert_allclose(total, levels)  # no dividend: both variants agree
    assert count.tolist() == [0, 2, 2]


def test_the_total_return_index_reinvests_a_dividend() -> None:
    sessions = days("2024-06-03", "2024-06-04")
    ids = np.array([1, 1], dtype=np.int32)
    close = np.array([100.0, 98.0])  # goes ex a $2 dividend on 2024-06-04
    dividend = Action(date(2024, 6, 4), "dividend", 2.0, dividend_factor(2.0, 100.0))
    part = index_contribution(sessions, ids, sessions, close, {1: 10.0}, {1: [dividend]})
    levels, total, _ = chain_index(part)
    assert levels[1] == pytest.approx(980.0)
    assert total[1] == pytest.approx(1000.0)


def test_sector_performance_is_the_change_of_market_value_and_the_plain_mean() -> None:
    # A $10 stock with 1,000 shares that doubles, a $100 stock with 10 shares that halves;
    # the second split 2-for-1 in the period (its base is split-adjusted: 200 -> 100).
    price = np.array([20.0, 50.0])
    shares = np.array([1000.0, 10.0])
    price_base = np.array([10.0, 100.0])
    cap, equal, total = sector_performance(price, shares, price_base, price_base)
    # Market value 10,000 + 1,000 -> 20,000 + 500.
    assert cap == pytest.approx((20_500 / 11_000 - 1) * 100, abs=1e-4)
    assert equal == pytest.approx(((1.0 + -0.5) / 2) * 100, abs=1e-4)
    assert total == pytest.approx(cap, abs=1e-4)
    # A member without a base is left out of every measure.
    none_base = np.array([10.0, np.nan])
    cap, equal, _ = sector_performance(price, shares, none_base, none_base)
    assert cap == pytest.approx(100.0) and equal == pytest.approx(100.0)
