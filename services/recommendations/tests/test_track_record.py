"""Outcomes and the track record on hand-built data with known answers; the IC and the
quantile returns against an independent pandas computation of alphalens' definitions
(alphalens-reloaded itself is not installable here; see docs/recommendations.md)."""

from __future__ import annotations

import math
import uuid
import warnings
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from services.recommendations.domain import spec as s
from services.recommendations.domain.calls import Action
from services.recommendations.domain.factors import CorporateAction, Panel
from services.recommendations.domain.inputs import (
    Block,
    IndexLevels,
    Series,
    build_panel,
    month_ends,
    panel_from_blocks,
)
from services.recommendations.domain.track_record import (
    BENCHMARK,
    Judged,
    Matured,
    Pending,
    calibration_inputs,
    information_coefficient,
    is_hit,
    outcomes,
    record,
    spearman,
)

START = np.datetime64("2020-01-01", "D")


def panel(closes: list[list[float]], index: list[float] | None = None) -> Panel:
    arr = np.array(closes, dtype=np.float64)
    return Panel(
        tickers=tuple(f"S{i}" for i in range(len(arr))),
        sectors=(None,) * len(arr),
        sessions=np.arange(START, START + arr.shape[1]),
        closes=arr,
        benchmark=np.array(index if index is not None else [1000.0] * arr.shape[1]),
    )


def pending(ticker: str, action: Action, *, day: int = 0, vol: float | None = 0.2) -> Pending:
    return Pending(
        recommendation_id=uuid.uuid4(),
        ticker=ticker,
        as_of=(START + day).astype(object),
        action=action,
        horizon_days=2,
        volatility=vol,
    )


def test_outcomes_are_returns_over_the_horizon_against_the_index() -> None:
    # S0 +10%, S1 -10%, S2 +4% over sessions 0 -> 2; the index +4%, whatever the
    # universe's mean (+1.3 %) says.
    p = panel(
        [[100, 105, 110, 120], [50, 48, 45, 40], [10, 10, 10.4, 10]],
        index=[1000, 990, 1040, 1100],
    )
    calls = [pending("S0", Action.BUY), pending("S1", Action.BUY), pending("S1", Action.SELL)]
    calls.append(pending("S2", Action.HOLD))
    found = {o.recommendation_id: o for o in outcomes(p, calls)}
    buy_up, buy_down, sell_down, hold_flat = (found[c.recommendation_id] for c in calls)
    assert buy_up.realised_return == pytest.approx(0.10)
    assert buy_up.benchmark_return == pytest.approx(0.04)
    assert buy_up.excess_return == pytest.approx(0.06) and buy_up.hit
    assert buy_down.excess_return == pytest.approx(-0.14) and not buy_down.hit
    assert sell_down.hit and hold_flat.hit and hold_flat.excess_return == pytest.approx(0.0)
    assert buy_up.matured_on == (START + 2).astype(object)
    assert BENCHMARK == "market-index-total-return" and buy_up.benchmark == BENCHMARK


def test_without_an_index_level_at_either_end_a_call_waits() -> None:
    closes = [[100.0, 105.0, 110.0, 120.0]]
    call = pending("S0", Action.BUY)
    assert outcomes(panel(closes, index=[1000, 1010, np.nan, 1030]), [call]) == []
    no_index = Panel(("S0",), (None,), panel(closes).sessions, np.array(closes, dtype=float))
    assert outcomes(no_index, [call]) == []
    later = pending("S0", Action.BUY, day=1)
    assert outcomes(panel(closes, index=[1000, 1010, 1020, np.nan]), [later]) == []
    assert len(outcomes(panel(closes, index=[np.nan, 1010, 1020, 1030]), [later])) == 1


def test_index_levels_land_on_the_panels_sessions() -> None:
    # The index has a session the panel lacks and lacks one the panel has.
    index = IndexLevels(["2020-01-01", "2020-01-02", "2020-01-04"], [1000.0, 1010.0, 1030.0])
    p = build_panel(
        [Series("A", ["2020-01-02", "2020-01-03", "2020-01-04", "2020-01-05"], [1, 2, 3, 4])],
        sectors={},
        sources={},
        benchmark=index,
    )
    assert p.benchmark is not None
    np.testing.assert_array_equal(p.benchmark, [1010.0, np.nan, 1030.0, np.nan])


def test_calls_not_yet_matured_or_without_a_close_are_left_unjudged() -> None:
    p = panel([[100, 105, 110, 120], [50, 48, np.nan, 40]])
    late = pending("S0", Action.BUY, day=2)  # needs session 4: not there yet
    halted = pending("S1", Action.BUY)  # no close at session 2
    unknown = pending("ZZ", Action.BUY)
    assert outcomes(p, [late, halted, unknown]) == []


def test_hold_hits_within_its_volatility_band() -> None:
    band = 0.675 * 0.2 * math.sqrt(2 / 252)
    assert is_hit(Action.HOLD, band * 0.9, 0.2, 2)
    assert not is_hit(Action.HOLD, -band * 1.1, 0.2, 2)
    assert not is_hit(Action.HOLD, 0.0, None, 2)


def judged(day: date, score: float, excess: float, *, confidence: float = 0.6) -> Judged:
    action = Action.BUY if score > 0.75 else Action.SELL if score < -0.75 else Action.HOLD
    return Judged(
        as_of=day,
        action=action,
        confidence=confidence,
        score=score,
        sector="Energy",
        model_version="mf-1.0",
        realised_return=excess,
        excess_return=excess,
        hit=(excess > 0) if action is Action.BUY else (excess < 0),
    )


def test_ic_and_quantile_returns_match_alphalens_definitions() -> None:
    rng = np.random.default_rng(8)
    rows = []
    for k in range(12):
        day = date(2021, 1, 1) + timedelta(days=30 * k)
        scores = rng.normal(size=50)
        excess = 0.02 * scores + rng.normal(0, 0.05, 50)
        scores[:3] = 0.5  # ties, which alphalens ranks by average
        rows += [judged(day, float(a), float(b)) for a, b in zip(scores, excess, strict=True)]
    ours = information_coefficient(rows)

    frame = pd.DataFrame(
        {
            "day": [r.as_of for r in rows],
            "score": [r.score for r in rows],
            "excess": [r.excess_return for r in rows],
        }
    )
    # alphalens.performance.factor_information_coefficient: per date, Spearman of factor
    # and forward return; mean_information_coefficient: their mean.
    per_day = frame.groupby("day").apply(
        lambda g: g["score"].rank().corr(g["excess"].rank()), include_groups=False
    )
    assert ours["mean"] == pytest.approx(per_day.mean(), abs=1e-6)
    assert ours["std"] == pytest.approx(per_day.std(), abs=1e-6)
    assert ours["dates"] == 12
    # alphalens.utils.quantize_factor (quantiles=5: pd.qcut of each date's factor) and
    # performance.mean_return_by_quantile (mean per date, then over dates).
    frame["q"] = frame.groupby("day")["score"].transform(lambda x: pd.qcut(x, 5, labels=False) + 1)
    by_q = frame.groupby(["day", "q"])["excess"].mean().groupby("q").mean()
    for q, value in by_q.items():
        assert ours["quantile_mean_excess_return"][str(q)] == pytest.approx(value, abs=1e-6)
    top, bottom = by_q.iloc[-1], by_q.iloc[0]
    assert top > bottom  # the planted signal shows


def test_spearman_known_answers() -> None:
    assert spearman(np.array([1.0, 2, 3, 4]), np.array([10.0, 20, 30, 40])) == pytest.approx(1)
    assert spearman(np.array([1.0, 2, 3, 4]), np.array([4.0, 3, 2, 1])) == pytest.approx(-1)
    assert math.isnan(spearman(np.array([1.0, 1, 1]), np.array([1.0, 2, 3])))


def test_the_record_groups_and_scores_confidence() -> None:
    day = date(2022, 3, 1)
    rows = [
        judged(day, 1.5, 0.05, confidence=0.8),  # BUY hit
        judged(day, 1.2, -0.02, confidence=0.6),  # BUY miss
        judged(day, -1.0, -0.03, confidence=0.7),  # SELL hit
    ]
    result = record(rows)
    assert result["calls"] == 3 and result["hit_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert result["by_action"]["BUY"]["hit_rate"] == 0.5
    assert result["by_action"]["SELL"]["calls"] == 1
    brier = ((0.8 - 1) ** 2 + (0.6 - 0) ** 2 + (0.7 - 1) ** 2) / 3
    assert result["brier_score"] == pytest.approx(brier, abs=1e-6)
    buckets = {b["bucket"]: b for b in result["reliability"]}
    assert buckets["0.80-1.00"]["observed_hit_rate"] == 1.0
    assert record([]) == {"calls": 0}


def test_calibration_reads_conviction_under_the_calls_own_version() -> None:
    day = date(2024, 1, 2)
    rows = [
        Matured(Action.BUY, 1.25, True, "mf-1.0", day),
        Matured(Action.HOLD, 0.0, False, "gone-0", day),
    ]
    actions, convictions, hits = calibration_inputs(rows, s.SPECS)
    assert actions == [Action.BUY] and convictions == [pytest.approx(0.5)] and hits == [True]


def test_month_ends_and_a_panel_from_series() -> None:
    p = build_panel(
        [
            Series(
                "A",
                ["2024-01-30", "2024-01-31", "2024-02-01", "2024-02-29", "2024-03-01"],
                [1, 2, 3, 4, 5],
            ),
            Series("B", ["2024-01-31", "2024-03-01"], [7, 8]),
            Series("C", [], []),
        ],
        sectors={"A": "Energy"},
        sources={"A": ("market:simulated",)},
    )
    assert p.tickers == ("A", "B") and p.sectors == ("Energy", None)
    assert np.isnan(p.closes[1, 0]) and p.closes[1, 1] == 7
    assert month_ends(p, min_sessions=1) == [date(2024, 1, 31), date(2024, 2, 29)]
    assert month_ends(p, min_sessions=3) == [date(2024, 2, 29)]


def test_ic_and_quantile_returns_agree_with_alphalens_reloaded() -> None:
    """alphalens-reloaded (a dev-only dependency, as TA-Lib is for indicators) computes
    the same IC and quintile returns from the same calls."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import alphalens.performance as al_perf
        import alphalens.utils as al_utils

    rng = np.random.default_rng(21)
    rows = []
    for k in range(10):
        day = date(2023, 1, 2) + timedelta(days=31 * k)
        scores = rng.normal(size=40)
        excess = 0.03 * scores + rng.normal(0, 0.05, 40)
        rows += [judged(day, float(a), float(b)) for a, b in zip(scores, excess, strict=True)]
    ours = information_coefficient(rows)

    index = pd.MultiIndex.from_tuples(
        [(pd.Timestamp(r.as_of), f"A{i % 40}") for i, r in enumerate(rows)],
        names=["date", "asset"],
    )
    factor_data = pd.DataFrame(
        {"21D": [r.excess_return for r in rows], "factor": [r.score for r in rows]},
        index=index,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        factor_data["factor_quantile"] = al_utils.quantize_factor(factor_data, quantiles=5)
        ic = al_perf.factor_information_coefficient(factor_data)
        by_date, _ = al_perf.mean_return_by_quantile(factor_data, by_date=True, demeaned=False)
    assert ours["mean"] == pytest.approx(float(ic["21D"].mean()), abs=1e-6)
    assert ours["std"] == pytest.approx(float(ic["21D"].std()), abs=1e-6)
    theirs = by_date["21D"].groupby(level="factor_quantile").mean()
    for q, value in theirs.items():
        assert ours["quantile_mean_excess_return"][str(int(q))] == pytest.approx(value, abs=1e-6)


def test_blocks_land_on_one_calendar_as_series_do() -> None:
    """Two replies with different calendars make the same panel as the same data as
    series; a security without a bar is left out either way."""
    a = Block(
        ["2020-01-02", "2020-01-03"],
        ["A", "GONE"],
        [1.0, 2.0, None, None],
        [10.0, 20.0, None, None],
    )
    b = Block(["2020-01-03", "2020-01-06"], ["B"], [5.0, None], [50.0, None])
    split = CorporateAction(date(2020, 1, 3), "split", 2.0)
    blocks = panel_from_blocks(
        [a, b],
        sectors={"A": "Energy", "B": None},
        sources={"B": ("market:simulated",)},
        actions={"A": (split,), "GONE": (split,)},
        benchmark=IndexLevels(["2020-01-03"], [1000.0]),
    )
    series = build_panel(
        [
            Series("A", ["2020-01-02", "2020-01-03"], [1.0, 2.0], [10.0, 20.0]),
            Series("B", ["2020-01-03"], [5.0], [50.0]),
        ],
        sectors={"A": "Energy", "B": None},
        sources={"B": ("market:simulated",)},
        actions={"A": (split,)},
        benchmark=IndexLevels(["2020-01-03"], [1000.0]),
    )
    assert blocks.tickers == series.tickers == ("A", "B")
    assert blocks.sectors == ("Energy", None) and dict(blocks.actions) == {"A": (split,)}
    # 2020-01-06 has no bar at all: left out, as the series never name it.
    np.testing.assert_array_equal(blocks.sessions, series.sessions)
    np.testing.assert_array_equal(blocks.closes, series.closes)
    assert blocks.volumes is not None and series.volumes is not None
    np.testing.assert_array_equal(blocks.volumes, series.volumes)
    assert blocks.benchmark is not None and series.benchmark is not None
    np.testing.assert_array_equal(blocks.benchmark, series.benchmark)
    assert blocks.sources_of("B") == ("market:simulated",)
