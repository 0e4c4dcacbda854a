"""The technical analysis of one security: every indicator with its parameters."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

from services.market.domain import indicators as ind
from services.market.domain import statistics as st

F64 = npt.NDArray[np.float64]

# Every indicator runs over the security's whole adjusted history (the recursive ones —
# EMA, MACD, RSI and ATR's Wilder averages — depend on where they start, so a shorter read
# would change them); windowed figures (volatility, drawdown, beta, Sharpe, Sortino, the
# 52-week range) use their last ``window`` sessions of it.
RISK_FREE_RATE = 0.0  # annual; no risk-free series is stored: excess returns over zero
WARM_UP_NOTE = (
    "Every indicator is computed over the whole split- and dividend-adjusted history"
    " (history.sessions sessions from history.start). warm_up_sessions: sessions an"
    " indicator needs before its first value (TA-Lib's lookback + 1); with less history the"
    " value is null. EMA, MACD, RSI and ATR are recursive, seeded with a simple average"
    " (TA-Lib's default): their value depends on the start of the history; the seed's"
    " weight falls below 0.1 % after ~3.45 x (period + 1) sessions for an EMA and ~6.9 x"
    " period for Wilder's average (RSI, ATR)."
)


def _warm_up(kind: str, period: int) -> int:
    return {"SMA": period, "EMA": period}[kind]


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def analyse(
    days: npt.NDArray[np.datetime64],
    high: F64,
    low: F64,
    close: F64,
    volume: F64,
    *,
    market_days: npt.NDArray[np.datetime64],
    market_levels: F64,
    rs_universe: float | None,
    rs_sector: float | None,
) -> dict[str, Any]:
    """Indicators over adjusted daily bars (oldest first)."""
    if len(close) == 0:
        return {"as_of": None}
    upper, middle, lower = ind.bollinger(close, 20, 2.0)
    line, signal, histogram = ind.macd(close, 12, 26, 9)
    window = slice(max(0, len(close) - st.WINDOW_52W), len(close))
    drawdown = ind.max_drawdown(close[window])
    common, asset_i, market_i = np.intersect1d(days, market_days, return_indices=True)
    beta = ind.beta(close[asset_i], market_levels[market_i]) if len(common) > 1 else None
    vol_window = slice(max(0, len(volume) - st.AVERAGE_VOLUME_WINDOW), len(volume))
    window_days = days[window]
    sessions = len(close)
    return {
        "as_of": date.fromisoformat(str(days[-1])),
        "last_close": _round(close[-1], 4),
        "history": {
            "start": date.fromisoformat(str(days[0])),
            "sessions": sessions,
            "note": WARM_UP_NOTE,
        },
        "returns": {k: _round(v) for k, v in st.period_returns(days, close).items()},
        "moving_averages": [
            {
                "type": kind,
                "period": period,
                "warm_up_sessions": _warm_up(kind, period),
                "value": _round(ind.last(fn(close, period)), 4),
            }
            for kind, fn in (("SMA", ind.sma), ("EMA", ind.ema))
            for period in (20, 50, 200)
        ],
        "rsi": {
            "period": 14,
            "warm_up_sessions": 15,
            "value": _round(ind.last(ind.rsi(close, 14)), 4),
        },
        "macd": {
            "fast_period": 12,
            "slow_period": 26,
            "signal_period": 9,
            "warm_up_sessions": 26 + 9 - 1,
            "macd": _round(ind.last(line)),
            "signal": _round(ind.last(signal)),
            "histogram": _round(ind.last(histogram)),
        },
        "bollinger_bands": {
            "period": 20,
            "std_devs": 2.0,
            "warm_up_sessions": 20,
            "upper": _round(ind.last(upper), 4),
            "middle": _round(ind.last(middle), 4),
            "lower": _round(ind.last(lower), 4),
        },
        "atr": {
            "period": 14,
            "warm_up_sessions": 15,
            "value": _round(ind.last(ind.atr(high, low, close, 14)), 4),
        },
        "volatility": {
            "window": st.WINDOW_52W,
            "annualisation_days": ind.TRADING_DAYS,
            "value": _round(ind.annualised_volatility(close, st.WINDOW_52W)),
        },
        "max_drawdown": {
            "window": st.WINDOW_52W,
            "value": _round(drawdown[0]) if drawdown else None,
            "peak_date": date.fromisoformat(str(window_days[drawdown[1]])) if drawdown else None,
            "trough_date": date.fromisoformat(str(window_days[drawdown[2]])) if drawdown else None,
        },
        "beta": {
            "window": st.WINDOW_52W,
            "benchmark": "universe index, total return",
            "benchmark_history": "/api/v1/market/index",
            "returns": "simple daily returns of adjusted closes, OLS slope",
            "value": _round(beta),
        },
        "sharpe_ratio": {
            "window": st.WINDOW_52W,
            "risk_free_rate": RISK_FREE_RATE,
            "annualisation_days": ind.TRADING_DAYS,
            "convention": "mean(daily excess simple return) / sd(ddof=1) x sqrt(252)",
            "value": _round(ind.sharpe_ratio(close, st.WINDOW_52W, RISK_FREE_RATE)),
        },
        "sortino_ratio": {
            "window": st.WINDOW_52W,
            "risk_free_rate": RISK_FREE_RATE,
            "annualisation_days": ind.TRADING_DAYS,
            "convention": "mean(daily excess return) x 252 / (sqrt(mean(min(excess, 0)^2))"
            " x sqrt(252)); target = the risk-free rate",
            "value": _round(ind.sortino_ratio(close, st.WINDOW_52W, RISK_FREE_RATE)),
        },
        "range_52w": {
            "window": st.WINDOW_52W,
            "high": _round(float(np.max(high[window])), 4),
            "low": _round(float(np.min(low[window])), 4),
        },
        "relative_strength": {
            "basis": "1y return percentile",
            "universe_percentile": _round(rs_universe, 2),
            "sector_percentile": _round(rs_sector, 2),
        },
        "average_volume": {
            "window": st.AVERAGE_VOLUME_WINDOW,
            "value": _round(float(np.mean(volume[vol_window])), 0),
        },
    }
