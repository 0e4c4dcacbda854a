"""The intraday price process behind the simulated live feed (pure, vectorised).

Each tick moves one security's price by a log-normal step scaled so that a session's ticks
add up to the security's daily volatility, and adds a share of its average daily volume.
The session's open, high, low and cumulative volume follow from the ticks, so the bar the
feed writes at the close is consistent with every tick published during the session.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
SESSION_SECONDS = 6.5 * 3600


@dataclass
class SessionState:
    """Per security (arrays aligned with ``tickers``): the live session so far."""

    tickers: list[str]
    previous_close: F64
    price: F64
    day_open: F64  # NaN until the first tick of the session
    day_high: F64
    day_low: F64
    volume: npt.NDArray[np.int64]
    daily_vol: F64  # daily return standard deviation
    avg_volume: F64

    def __len__(self) -> int:
        return len(self.tickers)


def new_session(state: SessionState, closes: F64) -> None:
    """Start the next session from ``closes`` (yesterday's closes)."""
    state.previous_close[:] = closes
    state.price[:] = closes
    state.day_open[:] = np.nan
    state.day_high[:] = np.nan
    state.day_low[:] = np.nan
    state.volume[:] = 0


def step(
    state: SessionState, rng: np.random.Generator, count: int, rate_per_second: float
) -> npt.NDArray[np.int64]:
    """Advance ``min(count, len(state))`` ticks, each on a different security chosen
    uniformly; return the indices (sorted) of those that traded (and so moved).

    A security ticking first in the session opens with a gap around its previous close.
    """
    n = len(state)
    if n == 0 or count <= 0:
        return np.empty(0, dtype=np.int64)
    idx = np.sort(rng.choice(n, size=min(count, n), replace=False))
    ticks_per_session = max(1.0, rate_per_second / n * SESSION_SECONDS)
    share = state.avg_volume[idx] / ticks_per_session  # expected shares per tick
    # A price moves only on a trade. A thinly traded security (less than a share per
    # tick) trades on a tick with probability = its expected shares, so its volume keeps
    # its average; a tick without a trade is no tick at all (no move, nothing published).
    chance = np.clip(share, 0.0, 1.0)
    trades = rng.random(len(idx)) < chance
    size = np.maximum(
        1, np.round(share / np.maximum(chance, 1e-12) * rng.lognormal(-0.125, 0.5, len(idx)))
    )
    idx, traded = idx[trades], size[trades].astype(np.int64)
    sd = state.daily_vol[idx] / math.sqrt(ticks_per_session)
    price = state.price[idx]
    first = np.isnan(state.day_open[idx])
    if first.any():
        gap = np.exp(0.3 * state.daily_vol[idx][first] * rng.standard_normal(int(first.sum())))
        opened = np.round(state.previous_close[idx][first] * gap, 2).clip(0.01, None)
        price[first] = opened
        state.day_open[idx[first]] = opened
        state.day_high[idx[first]] = opened
        state.day_low[idx[first]] = opened
    price = np.round(price * np.exp(sd * rng.standard_normal(len(idx))), 2).clip(0.01, None)
    state.price[idx] = price
    state.day_high[idx] = np.fmax(state.day_high[idx], price)
    state.day_low[idx] = np.fmin(state.day_low[idx], price)
    state.volume[idx] += traded
    return idx
