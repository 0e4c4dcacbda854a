"""Factor values for the whole universe at one as-of session, vectorised over a price panel.

The panel holds split- and dividend-adjusted closes (and volumes) on the market's session
calendar, one row per security, NaN where a security has no bar. :func:`compute_factors`
reads only the sessions up to ``as_of`` (point in time: nothing after the call's date can
change it) and only the last ``spec.lookback_days`` of them (the call's input window).
Every factor is scale-free in price (returns, ratios, an RSI, dollar volume computed from
adjusted close x adjusted volume), so a split, which rescales the adjusted history, cannot
move a score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import numpy.typing as npt

from services.recommendations.domain import spec as s

FloatArray = npt.NDArray[np.float64]

TRADING_DAYS_PER_YEAR = 252


@dataclass(frozen=True)
class CorporateAction:
    ex_date: date
    kind: str  # "split" or "dividend"
    value: float  # split ratio or cash amount per share


@dataclass(frozen=True)
class Panel:
    """Adjusted daily closes (and volumes) of a universe on one session calendar."""

    tickers: tuple[str, ...]
    sectors: tuple[str | None, ...]
    sessions: npt.NDArray[np.datetime64]  # datetime64[D], strictly ascending
    closes: FloatArray  # [securities, sessions]; NaN: no bar
    volumes: FloatArray | None = None  # same shape; None or NaN: unknown
    actions: Mapping[str, tuple[CorporateAction, ...]] = field(default_factory=dict)
    # Where each security's data came from (``market:simulated``, ``market:import:stooq``);
    # securities not named here get ``default_sources``.
    sources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    default_sources: tuple[str, ...] = ("market",)
    # The benchmark: market's total-return index level on each session (NaN: no level);
    # None when it was not fetched, and then no call can be judged (track_record).
    benchmark: FloatArray | None = None

    def sources_of(self, ticker: str) -> tuple[str, ...]:
        return self.sources.get(ticker, self.default_sources)

    def __post_init__(self) -> None:
        n, t = self.closes.shape
        if len(self.tickers) != n or len(self.sectors) != n or len(self.sessions) != t:
            raise ValueError("panel dimensions do not agree")
        if self.volumes is not None and self.volumes.shape != self.closes.shape:
            raise ValueError("volumes and closes differ in shape")
        if self.benchmark is not None and self.benchmark.shape != (t,):
            raise ValueError("the benchmark is not on the panel's sessions")
        if t > 1 and not bool(np.all(np.diff(self.sessions) > np.timedelta64(0, "D"))):
            raise ValueError("sessions must be strictly ascending")


@dataclass(frozen=True)
class FactorFrame:
    """Raw factor values of the securities that can be called at ``as_of``.

    ``values[i, j]`` is factor ``keys[j]`` of security ``tickers[i]`` (NaN: not enough
    history for that factor). This frame, with the sectors and prices, is everything the
    scoring needs: a call is replayed from it.
    """

    as_of: date
    keys: tuple[str, ...]
    tickers: tuple[str, ...]
    sectors: tuple[str | None, ...]
    values: FloatArray
    prices: FloatArray  # adjusted close at as_of (the last bar within max_stale_days)
    dollar_volume: FloatArray  # average daily dollar volume over 21 sessions (NaN: unknown)
    history_days: npt.NDArray[np.int64]  # sessions with a bar in the input window


def _ffill(a: FloatArray) -> FloatArray:
    """Carry each row's last value forward over NaNs (leading NaNs stay)."""
    idx = np.where(np.isnan(a), 0, np.arange(a.shape[1]))
    np.maximum.accumulate(idx, axis=1, out=idx)
    return a[np.arange(a.shape[0])[:, None], idx]


def _lagged_ratio(p: FloatArray, lag_far: int, lag_near: int) -> FloatArray:
    """``p[t - lag_near] / p[t - lag_far] - 1`` at the last column (NaN if too short)."""
    t = p.shape[1] - 1
    if t - lag_far < 0:
        return np.full(p.shape[0], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return p[:, t - lag_near] / p[:, t - lag_far] - 1.0


def _rsi(p: FloatArray, period: int = 14) -> FloatArray:
    """Wilder's RSI at the last column, seeded on the window's first ``period`` changes
    (deterministic for a given window). NaN rows (not enough bars) stay NaN."""
    n, t = p.shape
    out = np.full(n, np.nan)
    if t <= period:
        return out
    change = np.diff(p, axis=1)
    gain = np.where(change > 0, change, 0.0)
    loss = np.where(change < 0, -change, 0.0)
    # Rows start at different columns (listing dates): seed each at its own first bar.
    first = np.argmax(~np.isnan(change), axis=1)
    avg_gain = np.full(n, np.nan)
    avg_loss = np.full(n, np.nan)
    alpha = 1.0 / period
    for col in range(change.shape[1]):
        seed = first + period - 1 == col
        if seed.any():
            avg_gain[seed] = np.nanmean(gain[seed, col - period + 1 : col + 1], axis=1)
            avg_loss[seed] = np.nanmean(loss[seed, col - period + 1 : col + 1], axis=1)
        later = first + period - 1 < col
        if later.any():
            avg_gain[later] += alpha * (gain[later, col] - avg_gain[later])
            avg_loss[later] += alpha * (loss[later, col] - avg_loss[later])
    with np.errstate(divide="ignore", invalid="ignore"):
        total = avg_gain + avg_loss
        out = np.where(total > 0, 100.0 * avg_gain / total, 50.0)
    out[np.isnan(avg_gain)] = np.nan
    return out


def _sector_relative(r6: FloatArray, sectors: Sequence[str | None]) -> FloatArray:
    """Six-month return minus its sector's median (the universe's for sectors of fewer
    than three securities with a value, and for securities without a sector)."""
    out = np.full(r6.shape, np.nan)
    valid = ~np.isnan(r6)
    if not valid.any():
        return out
    universe_median = float(np.median(r6[valid]))
    labels = np.array([sector or "" for sector in sectors], dtype=object)
    for sector in set(labels.tolist()):
        members = (labels == sector) & valid
        if sector and members.sum() >= 3:
            out[members] = r6[members] - float(np.median(r6[members]))
        else:
            out[members] = r6[members] - universe_median
    return out


def compute_factors(panel: Panel, as_of: date, spec: s.ModelSpec) -> FactorFrame:
    """The factor values at the last session on or before ``as_of``, from that session's
    input window only; securities without a recent bar or enough history are left out."""
    end = int(np.searchsorted(panel.sessions, np.datetime64(as_of, "D"), side="right"))
    if end == 0:
        raise ValueError(f"no session on or before {as_of}")
    start = max(0, end - spec.lookback_days)
    raw = panel.closes[:, start:end]
    session = panel.sessions[end - 1].astype(object)
    has_bar = ~np.isnan(raw)
    history = has_bar.sum(axis=1)
    # Sessions since each row's last bar (0: it has one at as_of).
    staleness = np.where(has_bar.any(axis=1), np.argmax(has_bar[:, ::-1], axis=1), raw.shape[1])
    keep = (history >= spec.min_history_days) & (staleness <= spec.max_stale_days)
    idx = np.flatnonzero(keep)
    p = _ffill(raw[idx])
    t = p.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = np.log(p)
        rets = np.diff(log_p, axis=1)

    mom_12_1 = _lagged_ratio(p, 252, 21)
    mom_6m = _lagged_ratio(p, 126, 0)
    if t >= 200:
        window = p[:, t - 200 :]
        full = ~np.isnan(window).any(axis=1)
        trend = np.where(full, p[:, -1] / np.nanmean(window, axis=1) - 1.0, np.nan)
    else:
        trend = np.full(len(idx), np.nan)
    rsi = _rsi(p)
    recent = rets[:, -63:]
    enough = (~np.isnan(recent)).sum(axis=1) >= 40
    with np.errstate(invalid="ignore"):
        vol = np.where(
            enough, np.nanstd(recent, axis=1, ddof=1) * np.sqrt(TRADING_DAYS_PER_YEAR), np.nan
        )
    last_year = p[:, -min(t, 252) :]
    drawdown = p[:, -1] / np.nanmax(last_year, axis=1) - 1.0
    if t < 252:
        drawdown = np.where(history[idx] >= 126, drawdown, np.nan)

    dollar = np.full(len(idx), np.nan)
    if panel.volumes is not None:
        v = panel.volumes[idx, start:end][:, -21:]
        traded = raw[idx][:, -21:] * v
        counted = (~np.isnan(traded)).sum(axis=1)
        with np.errstate(invalid="ignore"):
            dollar = np.where(counted >= 10, np.nanmean(traded, axis=1), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        liquidity = np.where(dollar > 0, np.log10(dollar), np.nan)

    sectors = tuple(panel.sectors[i] for i in idx)
    by_key = {
        s.MOMENTUM_12_1: mom_12_1,
        s.MOMENTUM_6M: mom_6m,
        s.TREND_200D: trend,
        s.RSI_14: rsi,
        s.VOLATILITY_63D: vol,
        s.DRAWDOWN_252D: drawdown,
        s.LIQUIDITY_21D: liquidity,
        s.SECTOR_RELATIVE_6M: _sector_relative(mom_6m, sectors),
    }
    values = np.column_stack([by_key[k] for k in spec.keys]).astype(np.float64)
    values[~np.isfinite(values)] = np.nan
    return FactorFrame(
        as_of=session,
        keys=spec.keys,
        tickers=tuple(panel.tickers[i] for i in idx),
        sectors=sectors,
        values=values,
        prices=p[:, -1].copy(),
        dollar_volume=dollar,
        history_days=history[idx].astype(np.int64),
    )
