"""The multi-factor model on hand-built price series whose answers are known."""

from __future__ import annotations

import dataclasses
import itertools
import re
from datetime import date, timedelta

import numpy as np
import pytest

from services.recommendations.domain import spec as s
from services.recommendations.domain.calibration import (
    MIN_MATURED,
    Calibration,
    fit_calibration,
    isotonic_fit,
    prior_confidence,
)
from services.recommendations.domain.calls import Action
from services.recommendations.domain.factors import CorporateAction, Panel, compute_factors
from services.recommendations.domain.model import Call, run_model
from services.recommendations.domain.scoring import zscores

SPEC = s.CURRENT
DAYS = 400
START = date(2024, 1, 1)


def sessions(count: int = DAYS) -> np.ndarray:
    return np.arange(np.datetime64(START, "D"), np.datetime64(START, "D") + count)


def geometric(growth: float, count: int = DAYS, start: float = 50.0) -> np.ndarray:
    return start * (1.0 + growth) ** np.arange(count)


def random_walk(rng: np.random.Generator, count: int = DAYS, sigma: float = 0.01) -> np.ndarray:
    return 40.0 * np.exp(np.cumsum(rng.normal(0.0, sigma, count)))


def universe(extra: dict[str, np.ndarray] | None = None, *, seed: int = 7) -> Panel:
    """Twenty random walks (the rest of the market), plus ``extra``."""
    rng = np.random.default_rng(seed)
    series = {f"R{chr(65 + i)}": random_walk(rng) for i in range(20)}
    series.update(extra or {})
    tickers = tuple(series)
    closes = np.vstack([series[t] for t in tickers])
    volumes = np.full(closes.shape, 200_000.0)
    return Panel(
        tickers=tickers,
        sectors=tuple("Energy" if i % 2 else "Utilities" for i in range(len(tickers))),
        sessions=sessions(closes.shape[1]),
        closes=closes,
        volumes=volumes,
        default_sources=("market:simulated",),
    )


def call_of(calls: list[Call], ticker: str) -> Call:
    return next(c for c in calls if c.ticker == ticker)


AS_OF = START + timedelta(days=DAYS - 1)


# --- factors ---------------------------------------------------------------------------


def test_factor_values_of_a_steady_uptrend_are_the_closed_forms() -> None:
    g = 0.002
    panel = universe({"UP": geometric(g)})
    frame = compute_factors(panel, AS_OF, SPEC)
    row = frame.values[frame.tickers.index("UP")]
    value = dict(zip(frame.keys, row, strict=True))
    assert value[s.MOMENTUM_12_1] == pytest.approx((1 + g) ** 231 - 1)
    assert value[s.MOMENTUM_6M] == pytest.approx((1 + g) ** 126 - 1)
    sma = np.mean((1 + g) ** np.arange(-199, 1))
    assert value[s.TREND_200D] == pytest.approx(1 / sma - 1)
    assert value[s.RSI_14] == pytest.approx(100.0)  # no down day
    assert value[s.VOLATILITY_63D] == pytest.approx(0.0, abs=1e-12)
    assert value[s.DRAWDOWN_252D] == pytest.approx(0.0)
    assert value[s.LIQUIDITY_21D] == pytest.approx(np.log10(200_000 * np.mean(geometric(g)[-21:])))


def test_a_steady_uptrend_scores_above_a_steady_downtrend() -> None:
    panel = universe({"UP": geometric(0.003), "DOWN": geometric(-0.003)})
    _, calls = run_model(panel, AS_OF, SPEC, Calibration())
    up, down = call_of(calls, "UP"), call_of(calls, "DOWN")
    assert up.score > SPEC.buy_at and up.action is Action.BUY
    # The downtrend is the universe's worst score; its calm (no volatility) and its
    # oversold RSI temper it, so only its rank is the known answer, not its band.
    assert down.score == min(c.score for c in calls) and down.action is not Action.BUY
    assert up.score == max(c.score for c in calls)
    assert up.target_price is not None and up.target_price >= up.price_at_call
    assert sum(f.contribution for f in up.factors) == pytest.approx(up.score)


def test_a_split_does_not_move_the_call_because_inputs_are_adjusted() -> None:
    """A 2-for-1 split on day 300: the adjusted history halves before it (and volumes
    double), which rescales the whole series. The call must not change, except the prices.
    The raw, unadjusted series does move it: the test can fail."""
    rng = np.random.default_rng(3)
    base = random_walk(rng) * np.exp(np.linspace(0, 0.4, DAYS))
    before = universe({"SPLT": base})
    volumes = before.volumes
    assert volumes is not None
    adjusted = dataclasses.replace(
        before,
        closes=np.vstack([before.closes[:-1], base * 0.5]),
        volumes=np.vstack([volumes[:-1], volumes[-1] * 2]),
    )
    raw = base.copy()
    raw[300:] *= 0.5
    unadjusted = dataclasses.replace(before, closes=np.vstack([before.closes[:-1], raw]))

    _, calls_before = run_model(before, AS_OF, SPEC, Calibration())
    _, calls_after = run_model(adjusted, AS_OF, SPEC, Calibration())
    _, calls_raw = run_model(unadjusted, AS_OF, SPEC, Calibration())
    a, b = call_of(calls_before, "SPLT"), call_of(calls_after, "SPLT")
    assert b.score == pytest.approx(a.score, abs=1e-9)
    assert (b.action, b.confidence) == (a.action, a.confidence)
    assert b.price_at_call == pytest.approx(a.price_at_call * 0.5)
    assert [f.z for f in b.factors] == pytest.approx([f.z for f in a.factors], abs=1e-9)
    assert call_of(calls_raw, "SPLT").score != pytest.approx(a.score, abs=1e-3)


def test_bars_after_the_as_of_date_do_not_change_the_call() -> None:
    panel = universe({"UP": geometric(0.002), "DOWN": geometric(-0.002)})
    as_of = START + timedelta(days=350)
    rng = np.random.default_rng(1)
    perturbed_closes = panel.closes.copy()
    perturbed_closes[:, 351:] *= rng.uniform(0.2, 5.0, perturbed_closes[:, 351:].shape)
    perturbed_closes[3, 360:] = np.nan
    perturbed = dataclasses.replace(
        panel,
        closes=perturbed_closes,
        actions={"UP": (CorporateAction(START + timedelta(days=380), "split", 2.0),)},
    )
    frame_a, calls_a = run_model(panel, as_of, SPEC, Calibration())
    frame_b, calls_b = run_model(perturbed, as_of, SPEC, Calibration())
    assert frame_a.as_of == frame_b.as_of == as_of
    assert calls_a == calls_b
    # ... while the same perturbation before as_of does change calls.
    earlier = panel.closes.copy()
    earlier[:, 340:] *= rng.uniform(0.2, 5.0, earlier[:, 340:].shape)
    _, calls_c = run_model(dataclasses.replace(panel, closes=earlier), as_of, SPEC, Calibration())
    assert calls_c != calls_a


def test_stocks_without_enough_or_recent_history_are_not_called() -> None:
    young = np.full(DAYS, np.nan)
    young[-30:] = 20.0 + np.arange(30)
    stale = geometric(0.001)
    stale[-10:] = np.nan
    panel = universe({"YUNG": young, "STAL": stale})
    frame = compute_factors(panel, AS_OF, SPEC)
    assert "YUNG" not in frame.tickers and "STAL" not in frame.tickers
    assert len(frame.tickers) == 20


def test_a_new_listing_has_the_long_factors_missing_and_says_so() -> None:
    fresh = np.full(DAYS, np.nan)
    fresh[-100:] = geometric(0.001, 100)
    _, calls = run_model(universe({"NEWL": fresh}), AS_OF, SPEC, Calibration())
    call = call_of(calls, "NEWL")
    missing = {f.key for f in call.factors if f.value is None}
    assert {s.MOMENTUM_12_1, s.TREND_200D} <= missing
    assert all(f.z == 0.0 and f.contribution == 0.0 for f in call.factors if f.value is None)
    assert any(r.startswith("Short price history: 100 sessions") for r in call.risk_factors)


# --- scoring ---------------------------------------------------------------------------


def test_zscores_ignore_missing_values_and_constant_columns() -> None:
    values = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [np.nan, 5.0]])
    z = zscores(values, clip=3.0)
    assert z[:, 0] == pytest.approx([-1.0, 0.0, 1.0, 0.0])
    assert z[:, 1] == pytest.approx([0.0, 0.0, 0.0, 0.0])
    outlier = np.array([[0.0]] * 30 + [[1000.0]])
    assert zscores(outlier, clip=3.0).max() == 3.0


# --- words -----------------------------------------------------------------------------


def test_two_stocks_with_different_drivers_read_differently() -> None:
    rng = np.random.default_rng(11)
    momentum = geometric(0.003) * np.exp(rng.normal(0, 0.03, DAYS))  # strong trend, volatile
    calm = 40.0 * np.exp(np.cumsum(rng.normal(0.0004, 0.002, DAYS)))  # quiet, barely rising
    _, calls = run_model(universe({"MOMO": momentum, "CALM": calm}), AS_OF, SPEC, Calibration())
    momo, quiet = call_of(calls, "MOMO"), call_of(calls, "CALM")
    top = {c.ticker: max(c.factors, key=lambda f: f.contribution).key for c in (momo, quiet)}
    assert top["MOMO"] == s.MOMENTUM_12_1 and top["CALM"] != s.MOMENTUM_12_1
    assert momo.thesis.replace("MOMO", "X") != quiet.thesis.replace("CALM", "X")
    assert "12-1 momentum" in momo.thesis and "12-1 momentum" not in quiet.thesis
    assert "calmest" in quiet.thesis and "by volatility" in quiet.thesis


def test_risk_factors_follow_the_rules() -> None:
    rng = np.random.default_rng(5)
    wild = random_walk(rng, sigma=0.06)
    crash = geometric(0.001)
    crash[-60:] *= np.linspace(1.0, 0.5, 60)
    panel = universe({"WILD": wild, "CRSH": crash})
    panel = dataclasses.replace(
        panel,
        actions={"CRSH": (CorporateAction(AS_OF - timedelta(days=5), "split", 2.0),)},
    )
    _, calls = run_model(panel, AS_OF, SPEC, Calibration())
    wild_risks = " ".join(call_of(calls, "WILD").risk_factors)
    crash_risks = " ".join(call_of(calls, "CRSH").risk_factors)
    assert "High volatility" in wild_risks and "High volatility" not in crash_risks
    depth = round((1 - 0.5 * 1.001**59) * 100)  # the peak is 59 sessions before as_of
    assert f"Deep drawdown: {depth}% below" in crash_risks
    assert f"Recent split (ex-date {(AS_OF - timedelta(days=5)).isoformat()})" in crash_risks
    assert panel.volumes is not None
    thin = dataclasses.replace(panel, volumes=panel.volumes * 0.001)
    _, thin_calls = run_model(thin, AS_OF, SPEC, Calibration())
    assert any(r.startswith("Thin liquidity") for r in call_of(thin_calls, "WILD").risk_factors)
    _, blind = run_model(dataclasses.replace(panel, volumes=None), AS_OF, SPEC, Calibration())
    assert "Liquidity not assessed" in " ".join(call_of(blind, "WILD").risk_factors)


def test_the_disclosure_states_the_method_and_labels_simulated_and_hypothetical() -> None:
    _, calls = run_model(universe(), AS_OF, SPEC, Calibration(), hypothetical=True)
    text = calls[0].methodology_disclosure
    assert SPEC.version in text and "SIMULATED" in text and "HYPOTHETICAL" in text
    assert "not yet calibrated" in text and f"{SPEC.horizon_days} trading sessions" in text
    assert calls[0].data_sources == ("market:simulated",)
    real = dataclasses.replace(universe(), default_sources=("market:import:stooq",))
    _, live = run_model(real, AS_OF, SPEC, Calibration())
    assert "SIMULATED" not in live[0].methodology_disclosure
    assert "HYPOTHETICAL" not in live[0].methodology_disclosure


# --- confidence --------------------------------------------------------------------------


def test_isotonic_fit_pools_adjacent_violators() -> None:
    xs, ys = isotonic_fit([1, 2, 3, 4, 5], [1.0, 3.0, 2.0, 4.0, 0.0])
    # 3,2 pool to 2.5; then 4,0 pool to 2, which violates 2.5: pool 3,2,4,0 -> 2.25
    assert ys.tolist() == pytest.approx([1.0, 2.25])
    assert xs.tolist() == pytest.approx([1.0, 3.5])
    assert np.all(np.diff(isotonic_fit(*np.random.default_rng(0).random((2, 500)))[1]) >= 0)


def test_confidence_is_the_prior_until_enough_calls_have_matured() -> None:
    n = MIN_MATURED - 1
    few = fit_calibration([Action.BUY] * n, [1.0] * n, [True] * n)
    assert few.curves == {}
    assert few.confidence(Action.BUY, 1.0) == pytest.approx(prior_confidence(1.0))
    assert 0.5 <= prior_confidence(0.0) < prior_confidence(2.0) < 0.7


def test_fitted_confidence_tracks_the_observed_hit_rate() -> None:
    rng = np.random.default_rng(2)
    conviction = rng.uniform(0, 2, 5000)
    truth = 0.45 + 0.2 * conviction / 2  # 45% at the edge, 65% deep inside the band
    hits = rng.random(5000) < truth
    calibration = fit_calibration([Action.BUY] * 5000, conviction.tolist(), hits.tolist())
    assert calibration.is_fitted(Action.BUY) and not calibration.is_fitted(Action.SELL)
    assert calibration.confidence(Action.BUY, 0.1) == pytest.approx(0.46, abs=0.05)
    assert calibration.confidence(Action.BUY, 1.9) == pytest.approx(0.64, abs=0.05)
    grid = [calibration.confidence(Action.BUY, c) for c in np.linspace(0, 2, 50)]
    assert all(b >= a for a, b in itertools.pairwise(grid))
    assert Calibration.from_json(calibration.to_json()) == calibration
    assert "isotonic regression" in calibration.describe()


def risks_of(calls: list[Call], ticker: str) -> str:
    return " | ".join(call_of(calls, ticker).risk_factors)


def test_an_extreme_mover_is_flagged_even_when_calm() -> None:
    """The top BUY of a demo run rose 435% over 12-1 months with 37% volatility, no deep
    drawdown and enough volume: mf-1.0 gave it no risk factor; mf-1.1 flags the move."""
    rocket = geometric(0.0075)  # +0.75% a session: about +500% over 12-1 months, no noise
    slump = geometric(-0.004)  # about -60%
    panel = universe({"ROCK": rocket, "SLMP": slump})
    _, calls = run_model(panel, AS_OF, SPEC, Calibration())
    rock = call_of(calls, "ROCK")
    momentum = next(f.value for f in rock.factors if f.key == s.MOMENTUM_12_1)
    assert momentum is not None and momentum > 4.0 and rock.action is Action.BUY
    assert risks_of(calls, "ROCK").startswith(f"Extreme move: rose {momentum * 100:.0f}%")
    assert "sharp reversals" in risks_of(calls, "ROCK")
    assert risks_of(calls, "SLMP").startswith("Extreme move: fell")
    assert "Extreme move" not in " ".join(
        " ".join(c.risk_factors) for c in calls if c.ticker not in ("ROCK", "SLMP")
    )
    # The same stock under mf-1.0 (kept as it was, for replay): no rule, no risk factor.
    _, before = run_model(panel, AS_OF, s.V1, Calibration())
    assert call_of(before, "ROCK").risk_factors == ()
    # In a universe of 120 stocks, a +82% mover below the absolute bound is still the
    # universe's top 1%; in a universe of 22 (above) the tails are not used.
    rng = np.random.default_rng(3)
    many = {f"W{chr(65 + i // 26)}{chr(65 + i % 26)}": random_walk(rng) for i in range(119)}
    large = universe({**many, "FAST": geometric(0.0026)})
    _, wide = run_model(large, AS_OF, SPEC, Calibration())
    fast = call_of(wide, "FAST")
    assert 0.5 < next(f.value or 0 for f in fast.factors if f.key == s.MOMENTUM_12_1) < 1.0
    assert "Extreme move: rose" in risks_of(wide, "FAST")
    assert "(top 1% of the universe)" in risks_of(wide, "FAST")


def test_risks_are_relative_to_the_universe_as_well_as_absolute() -> None:
    """A calm, liquid universe of 120 (nothing near 60% volatility or $1M a day): its most
    volatile, deepest-fallen and thinnest tenth are still flagged, and say so."""
    rng = np.random.default_rng(11)
    sigmas = np.linspace(0.004, 0.02, 120)  # 6% .. 32% a year
    series = {
        f"S{chr(65 + i // 26)}{chr(65 + i % 26)}": 40.0
        * np.exp(np.cumsum(rng.normal(0.0, sg, DAYS)))
        for i, sg in enumerate(sigmas)
    }
    tickers = tuple(series)
    closes = np.vstack([series[t] for t in tickers])
    volumes = np.linspace(1e6, 3e6, len(tickers))[:, None] * np.ones(DAYS)  # >= $40M a day
    panel = Panel(
        tickers=tickers,
        sectors=tuple("Energy" if i % 2 else "Utilities" for i in range(len(tickers))),
        sessions=sessions(DAYS),
        closes=closes,
        volumes=volumes,
        default_sources=("market:simulated",),
    )
    frame, calls = run_model(panel, AS_OF, SPEC, Calibration())
    col = {k: j for j, k in enumerate(frame.keys)}
    vol = frame.values[:, col[s.VOLATILITY_63D]]
    assert vol.max() < SPEC.high_volatility
    n = len(tickers)
    drawdown = frame.values[:, col[s.DRAWDOWN_252D]]
    for key, label, order, absolute in (
        (s.VOLATILITY_63D, "High volatility", -vol, vol >= SPEC.high_volatility),
        (s.DRAWDOWN_252D, "Deep drawdown", drawdown, -drawdown >= SPEC.deep_drawdown),
        (s.LIQUIDITY_21D, "Thin liquidity", frame.values[:, col[s.LIQUIDITY_21D]], vol < 0),
    ):
        flagged = {c.ticker for c in calls if any(r.startswith(label) for r in c.risk_factors)}
        # the tenth at the risky end, by the factor's own ranking, and the absolute rule
        assert SPEC.tail is not None
        tail = {tickers[i] for i in np.argsort(order, kind="stable")[: int(n * SPEC.tail)]}
        assert flagged == tail | {tickers[i] for i in np.flatnonzero(absolute)}, key
        for ticker in tail:
            text = next(r for r in call_of(calls, ticker).risk_factors if r.startswith(label))
            share = re.search(
                r"the (?:most volatile|deepest|thinnest) (\d+)% of the universe", text
            )
            assert share is not None and 1 <= int(share.group(1)) <= 10, text
    # Under mf-1.0's absolute rules alone, neither volatility nor liquidity is flagged.
    _, before = run_model(panel, AS_OF, s.V1, Calibration())
    assert not any(
        r.startswith(("High volatility", "Thin liquidity")) for c in before for r in c.risk_factors
    )


def test_the_disclosure_states_the_risk_rules() -> None:
    _, calls = run_model(universe(), AS_OF, SPEC, Calibration())
    text = calls[0].methodology_disclosure
    assert "Risk factors flag: an extreme move (12-1 return at or beyond +100% or -50%" in text
    assert "the universe's most volatile 10%" in text and "under $1.0M traded a day" in text
    _, before = run_model(universe(), AS_OF, s.V1, Calibration())
    assert "Risk factors flag" not in before[0].methodology_disclosure
