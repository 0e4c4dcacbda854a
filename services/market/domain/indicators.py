"""Technical indicators over numpy arrays (oldest value first).

Definitions follow TA-Lib's defaults exactly, so that results can be checked against it:
SMA; EMA seeded with the SMA of its first ``period`` values; RSI and ATR with Wilder's
smoothing seeded by a simple average; MACD whose fast EMA starts where the slow one does;
Bollinger bands on the population standard deviation. Values before an indicator has
enough history are NaN. The recursive ones (EMA, Wilder) run a short Python loop over the
series of one security (a few hundred to a few thousand values), the rest is vectorised.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
TRADING_DAYS = 252


def _nan(n: int) -> F64:
    return np.full(n, np.nan)


def sma(values: F64, period: int) -> F64:
    out = _nan(len(values))
    if len(values) >= period:
        csum = np.cumsum(np.insert(values.astype(np.float64), 0, 0.0))
        out[period - 1 :] = (csum[period:] - csum[:-period]) / period
    return out


def _ema_from(values: F64, period: int, seed_start: int, first_out: int) -> F64:
    """EMA whose seed is the mean of ``values[seed_start:first_out + 1]``."""
    out = _nan(len(values))
    if first_out >= len(values):
        return out
    k = 2.0 / (period + 1)
    prev = float(np.mean(values[seed_start : first_out + 1]))
    # The recursion runs on Python floats: indexing numpy arrays element by element is
    # several times slower.
    result = [prev]
    for x in values[first_out + 1 :].tolist():
        prev = (x - prev) * k + prev
        result.append(prev)
    out[first_out:] = result
    return out


def ema(values: F64, period: int) -> F64:
    return _ema_from(values, period, 0, period - 1)


def _wilder(values: F64, period: int, first: int) -> F64:
    """Wilder smoothing of ``values[first:]`` seeded by the mean of the first ``period``."""
    out = _nan(len(values))
    seed_end = first + period - 1
    if seed_end >= len(values):
        return out
    prev = float(np.mean(values[first : seed_end + 1]))
    result = [prev]
    keep = (period - 1) / period
    for x in values[seed_end + 1 :].tolist():
        prev = prev * keep + x / period
        result.append(prev)
    out[seed_end:] = result
    return out


def rsi(close: F64, period: int = 14) -> F64:
    out = _nan(len(close))
    if len(close) <= period:
        return out
    change = np.diff(close, prepend=np.nan)
    gain = _wilder(np.where(change > 0, change, 0.0), period, 1)
    loss = _wilder(np.where(change < 0, -change, 0.0), period, 1)
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(total > 0, 100.0 * gain / total, 0.0)
    out[:period] = np.nan
    return out


def macd(close: F64, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[F64, F64, F64]:
    """(MACD line, signal line, histogram); all start at ``slow + signal - 2``."""
    n = len(close)
    slow_ema = ema(close, slow)
    fast_ema = _ema_from(close, fast, slow - fast, slow - 1)
    line = fast_ema - slow_ema
    sig = _nan(n)
    start = slow - 1
    if n > start:
        sig[start:] = _ema_from(line[start:], signal, 0, signal - 1)
    first = slow + signal - 2
    line = line.copy()
    line[: min(first, n)] = np.nan
    return line, sig, line - sig


def bollinger(close: F64, period: int = 20, width: float = 2.0) -> tuple[F64, F64, F64]:
    """(upper, middle, lower) with the population standard deviation."""
    middle = sma(close, period)
    mean_sq = sma(close * close, period)
    sd = np.sqrt(np.maximum(mean_sq - middle * middle, 0.0))
    return middle + width * sd, middle, middle - width * sd


def true_range(high: F64, low: F64, close: F64) -> F64:
    prev = np.roll(close, 1)
    tr = np.maximum(high - low, np.maximum(np.abs(high - prev), np.abs(low - prev)))
    tr[0] = np.nan
    return tr


def atr(high: F64, low: F64, close: F64, period: int = 14) -> F64:
    return _wilder(true_range(high, low, close), period, 1)


def log_returns(close: F64) -> F64:
    return np.diff(np.log(close))


def annualised_volatility(close: F64, window: int = TRADING_DAYS) -> float | None:
    """Sample standard deviation of the last ``window`` daily log returns x √252."""
    returns = log_returns(close)[-window:]
    if len(returns) < 2:
        return None
    return float(np.std(returns, ddof=1) * math.sqrt(TRADING_DAYS))


def max_drawdown(close: F64) -> tuple[float, int, int] | None:
    """(largest peak-to-trough fall as a negative fraction, peak index, trough index)."""
    if len(close) < 2:
        return None
    peaks = np.maximum.accumulate(close)
    drawdowns = close / peaks - 1.0
    trough = int(np.argmin(drawdowns))
    peak = int(np.argmax(close[: trough + 1])) if trough > 0 else 0
    return float(drawdowns[trough]), peak, trough


def beta(asset_close: F64, market_close: F64, window: int = TRADING_DAYS) -> float | None:
    """OLS slope of the asset's simple daily returns on the market's over the last
    ``window`` returns (the two series aligned on the same days)."""
    a = asset_close[1:] / asset_close[:-1] - 1.0
    m = market_close[1:] / market_close[:-1] - 1.0
    a, m = a[-window:], m[-window:]
    if len(a) < 20:
        return None
    m_dev = m - m.mean()
    var = float(np.dot(m_dev, m_dev))
    if var == 0:
        return None
    return float(np.dot(a - a.mean(), m_dev) / var)


def sharpe_ratio(
    close: F64, window: int = TRADING_DAYS, risk_free_rate: float = 0.0
) -> float | None:
    """Annualised Sharpe ratio of the last ``window`` simple daily returns: the mean daily
    excess return over the sample standard deviation (ddof=1), times √252; the annual
    ``risk_free_rate`` is converted to a daily one as ``(1 + r)^(1/252) - 1``."""
    excess = _excess_returns(close, window, risk_free_rate)
    if excess is None:
        return None
    sd = float(np.std(excess, ddof=1))
    return float(np.mean(excess) / sd * math.sqrt(TRADING_DAYS)) if sd > 0 else None


def sortino_ratio(
    close: F64, window: int = TRADING_DAYS, risk_free_rate: float = 0.0
) -> float | None:
    """Annualised Sortino ratio of the last ``window`` simple daily returns: the mean daily
    excess return times 252 over the annualised downside deviation
    ``sqrt(mean(min(excess, 0)^2)) x √252`` (the target is the risk-free rate; all
    returns count in the mean, the convention of empyrical and of Sortino & Price)."""
    excess = _excess_returns(close, window, risk_free_rate)
    if excess is None:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2))) * math.sqrt(TRADING_DAYS)
    return float(np.mean(excess) * TRADING_DAYS / downside) if downside > 0 else None


def _excess_returns(close: F64, window: int, risk_free_rate: float) -> F64 | None:
    returns = (close[1:] / close[:-1] - 1.0)[-window:]
    if len(returns) < 20:
        return None
    daily_rf = (1.0 + risk_free_rate) ** (1.0 / TRADING_DAYS) - 1.0
    return np.asarray(returns - daily_rf)


def last(values: F64) -> float | None:
    """The last value, or None if it is NaN (not enough history)."""
    if len(values) == 0 or not np.isfinite(values[-1]):
        return None
    return float(values[-1])
