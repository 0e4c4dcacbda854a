"""Statistics over one security and over the universe: period returns, 52-week ranges,
relative-strength percentiles and the capitalisation-weighted universe index."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from services.market.domain.adjustment import Action, factors

F64 = npt.NDArray[np.float64]
Days = npt.NDArray[np.datetime64]

PERIODS = ("1d", "1w", "1m", "3m", "6m", "ytd", "1y")
WINDOW_52W = 252
AVERAGE_VOLUME_WINDOW = 30
INDEX_BASE = 1000.0


def _months_back(day: date, months: int) -> date:
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    for d in (day.day, 30, 29, 28):
        try:
            return date(year, month, d)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def period_targets(as_of: date) -> dict[str, date]:
    """For each period but ``1d``, the calendar day whose close (or the last close before
    it) a return over that period starts from."""
    return {
        "1w": as_of - timedelta(days=7),
        "1m": _months_back(as_of, 1),
        "3m": _months_back(as_of, 3),
        "6m": _months_back(as_of, 6),
        "ytd": date(as_of.year - 1, 12, 31),
        "1y": _months_back(as_of, 12),
    }


def base_positions(days: Days, as_of_index: int) -> dict[str, int | None]:
    """Index of the base close of each period in ``days`` (sorted), or None when the
    history does not reach back that far."""
    as_of = date.fromisoformat(str(days[as_of_index]))
    result: dict[str, int | None] = {"1d": as_of_index - 1 if as_of_index >= 1 else None}
    for period, target in period_targets(as_of).items():
        i = int(np.searchsorted(days, np.datetime64(target, "D"), side="right")) - 1
        result[period] = i if i >= 0 else None
    return result


def period_returns(days: Days, close: F64, price: float | None = None) -> dict[str, float | None]:
    """Returns (fractions) over :data:`PERIODS` from adjusted closes; ``price`` (a live
    price) replaces the last close when given."""
    if len(close) == 0:
        return dict.fromkeys(PERIODS)
    last = len(close) - 1
    now = close[last] if price is None else price
    out: dict[str, float | None] = {}
    for period, i in base_positions(days, last).items():
        out[period] = float(now / close[i] - 1.0) if i is not None and close[i] > 0 else None
    return out


def percentile_ranks(values: F64) -> F64:
    """Percentile (0-100) of each finite value among the finite ones (ties averaged);
    NaN stays NaN."""
    out = np.full(len(values), np.nan)
    finite = np.flatnonzero(np.isfinite(values))
    if len(finite) == 0:
        return out
    if len(finite) == 1:
        out[finite] = 100.0
        return out
    v = values[finite]
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(len(v))
    ranks[order] = np.arange(len(v), dtype=np.float64)
    # Average the ranks of ties.
    _, inverse = np.unique(v, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    counts = np.bincount(inverse)
    ranks = (sums / counts)[inverse]
    out[finite] = ranks / (len(v) - 1) * 100.0
    return out


@dataclass(frozen=True)
class SecurityStats:
    security_id: int
    as_of: date
    close: float
    bases: dict[str, float | None]  # adjusted to the as_of basis
    high_52w: float | None
    low_52w: float | None
    avg_volume_30d: float | None
    return_1y: float | None
    daily_volatility: float | None = None


def security_stats(
    security_id: int,
    days: Days,
    high: F64,
    low: F64,
    close: F64,
    volume: npt.NDArray[np.int64],
    actions: list[Action],
) -> SecurityStats | None:
    """Stats of one security from its raw bars (oldest first) over at least a year."""
    if len(days) == 0:
        return None
    price_f, volume_f = factors(days, actions)
    adj_close = close * price_f
    last = len(days) - 1
    bases: dict[str, float | None] = {}
    for period, i in base_positions(days, last).items():
        if period != "1d":
            bases[period] = float(adj_close[i]) if i is not None else None
    window = slice(max(0, len(days) - WINDOW_52W), len(days))
    vol_window = slice(max(0, len(days) - AVERAGE_VOLUME_WINDOW), len(days))
    base_1y = bases.get("1y")
    return SecurityStats(
        security_id=security_id,
        as_of=date.fromisoformat(str(days[last])),
        close=float(close[last]),
        bases=bases,
        high_52w=float(np.max(high[window] * price_f[window])),
        low_52w=float(np.min(low[window] * price_f[window])),
        avg_volume_30d=float(np.mean(volume[vol_window] * volume_f[vol_window])),
        return_1y=float(close[last] / base_1y - 1.0) if base_1y else None,
        daily_volatility=float(np.std(np.diff(np.log(adj_close[window])), ddof=1))
        if len(days) > 2
        else None,
    )


def group_slices(security_ids: npt.NDArray[np.int32]) -> list[tuple[int, slice]]:
    """(security id, slice) of each run of rows of one security (rows sorted by security)."""
    if len(security_ids) == 0:
        return []
    starts = np.flatnonzero(np.r_[True, security_ids[1:] != security_ids[:-1]])
    ends = np.r_[starts[1:], len(security_ids)]
    return [
        (int(security_ids[s]), slice(int(s), int(e))) for s, e in zip(starts, ends, strict=True)
    ]


@dataclass(frozen=True)
class IndexContribution:
    """Per session: sum of weights x returns, sum of weights, constituents."""

    weighted: F64
    weights: F64
    count: npt.NDArray[np.int64]

    def __add__(self, other: IndexContribution) -> IndexContribution:
        return IndexContribution(
            self.weighted + other.weighted, self.weights + other.weights, self.count + other.count
        )


def index_contribution(
    sessions: Days,
    security_ids: npt.NDArray[np.int32],
    days: Days,
    close: F64,
    shares: dict[int, float],
    splits: dict[int, list[tuple[np.datetime64, float]]],
) -> IndexContribution:
    """What the rows (sorted by security, day) add to each session's index return:
    weight = previous close x shares, return = close x split ratio on the day / previous
    close, for securities that traded on both consecutive sessions."""
    n = len(sessions)
    weighted = np.zeros(n)
    weights = np.zeros(n)
    count = np.zeros(n, dtype=np.int64)
    pos = np.searchsorted(sessions, days.astype("datetime64[D]"))
    for security_id, rows in group_slices(security_ids):
        p = pos[rows]
        c = close[rows]
        if len(c) < 2:
            continue
        ratio = np.ones(len(c))
        for ex_date, value in splits.get(security_id, ()):
            ratio[days[rows] == ex_date] = value
        consecutive = p[1:] == p[:-1] + 1
        w = c[:-1] * shares.get(security_id, 0.0)
        r = c[1:] * ratio[1:] / c[:-1]
        target = p[1:][consecutive]
        np.add.at(weighted, target, (w * r)[consecutive])
        np.add.at(weights, target, w[consecutive])
        np.add.at(count, target, 1)
    return IndexContribution(weighted, weights, count)


def chain_index(
    contribution: IndexContribution, start_level: float = INDEX_BASE
) -> tuple[F64, npt.NDArray[np.int64]]:
    """Index levels per session from the contributions (the first session is the base)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        growth = np.where(
            contribution.weights > 0, contribution.weighted / contribution.weights, 1.0
        )
    growth[0] = 1.0
    return start_level * growth.cumprod(), contribution.count
