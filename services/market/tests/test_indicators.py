"""Indicators against TA-Lib (an independent C implementation) on real price series that
ship inside the ``backtesting`` wheel: Alphabet (GOOG) daily OHLCV 2004-2013 and EUR/USD
hourly OHLC. Volatility is checked against pandas, drawdown against a brute-force scan."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import talib
from backtesting.test import EURUSD, GOOG

from services.market.domain import indicators as ind

SERIES = {
    "GOOG daily": GOOG,
    "EURUSD hourly": EURUSD,
}


def _close(name: str, a: np.ndarray, b: np.ndarray, rtol: float = 1e-9) -> None:
    assert a.shape == b.shape
    defined = np.isfinite(b)
    # Same warm-up: NaN exactly where TA-Lib has no value yet.
    assert np.array_equal(np.isfinite(a), defined), name
    assert defined.sum() > 100
    np.testing.assert_allclose(a[defined], b[defined], rtol=rtol, atol=1e-9, err_msg=name)


@pytest.fixture(params=list(SERIES), ids=list(SERIES))
def ohlc(request: pytest.FixtureRequest) -> dict[str, np.ndarray]:
    frame = SERIES[request.param]
    return {
        c: frame[c.capitalize()].to_numpy(dtype=np.float64)
        for c in ("open", "high", "low", "close")
    }


@pytest.mark.parametrize("period", [20, 50, 200])
def test_moving_averages_match_talib(ohlc: dict[str, np.ndarray], period: int) -> None:
    close = ohlc["close"]
    _close("SMA", ind.sma(close, period), talib.SMA(close, period))
    _close("EMA", ind.ema(close, period), talib.EMA(close, period))


def test_rsi_macd_bollinger_atr_match_talib(ohlc: dict[str, np.ndarray]) -> None:
    close, high, low = ohlc["close"], ohlc["high"], ohlc["low"]
    _close("RSI", ind.rsi(close, 14), talib.RSI(close, 14))
    for ours, theirs, part in zip(
        ind.macd(close, 12, 26, 9), talib.MACD(close, 12, 26, 9), "MSH", strict=True
    ):
        _close(f"MACD {part}", ours, theirs)
    for ours, theirs, part in zip(
        ind.bollinger(close, 20, 2.0), talib.BBANDS(close, 20, 2.0, 2.0), "UML", strict=True
    ):
        _close(f"BBANDS {part}", ours, theirs, rtol=1e-7)
    _close("ATR", ind.atr(high, low, close, 14), talib.ATR(high, low, close, 14))


def test_beta_matches_talib() -> None:
    asset = GOOG.Close.to_numpy(dtype=np.float64)
    market = EURUSD.Close.to_numpy(dtype=np.float64)[: len(asset)]
    # TA-Lib's BETA(x, y): slope of y's returns on x's over the period.
    expected = talib.BETA(market, asset, 252)[-1]
    assert ind.beta(asset, market, 252) == pytest.approx(expected, rel=1e-9)


def test_volatility_matches_pandas() -> None:
    close = GOOG.Close
    expected = np.log(close).diff().tail(252).std(ddof=1) * math.sqrt(252)
    assert ind.annualised_volatility(close.to_numpy(dtype=np.float64)) == pytest.approx(
        expected, rel=1e-12
    )


def test_max_drawdown_matches_brute_force() -> None:
    close = GOOG.Close.to_numpy(dtype=np.float64)[:600]
    worst, peak, trough = ind.max_drawdown(close)  # type: ignore[misc]
    brute = min(close[j] / close[: j + 1].max() - 1.0 for j in range(len(close)))
    assert worst == pytest.approx(brute)
    assert close[trough] / close[peak] - 1.0 == pytest.approx(worst)
    assert peak < trough


def test_too_little_history_gives_nan_not_garbage() -> None:
    close = np.array([10.0, 11.0, 12.0])
    assert ind.last(ind.sma(close, 20)) is None
    assert ind.last(ind.rsi(close, 14)) is None
    assert ind.annualised_volatility(close[:1]) is None
    assert ind.beta(close, close) is None
    assert pd.isna(ind.macd(close)[0]).all()
