"""Statistics over one security and over the universe: period returns, 52-week ranges,
relative-strength percentiles and the capitalisation-weighted universe index.

The index is a chained Laspeyres index: each session's return is the market-value-weighted
mean of its constituents' returns, weights being the previous session's market value. A
market value is split-consistent — the split-adjusted close times the shares outstanding
today, which equals the as-traded close times the shares outstanding that day as long as
share counts change only by splits (buy-backs and issuance are not modelled) — so a
split changes neither a weight nor a return. Two variants: price return (split-adjusted
closes) and total return (split- and dividend-adjusted closes: dividends reinvested).
"""

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
INDEX_METHODOLOGY = (
    "Every security of the universe (listed or since delisted) that traded on two"
    " consecutive sessions is a constituent on the second. Chained daily: level = previous"
    " level x sum(weight x return) / sum(weight), weight = the previous session's market"
    " value (split-adjusted close x today's shares outstanding, i.e. as-traded close x the"
    " shares outstanding that day), so splits change neither weights nor returns."
    " price_return: returns of split-adjusted closes; total_return: returns of split- and"
    " dividend-adjusted closes (dividends reinvested on the ex-date, CRSP factor"
    " 1 - dividend / previous close). Base 1000 on the first session of the history."
)


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
    bases: dict[str, float | None]  # split- and dividend-adjusted to the as_of basis
    high_52w: float | None
    low_52w: float | None
    avg_volume_30d: float | None
    return_1y: float | None
    daily_volatility: float | None = None
    price_bases: dict[str, float | None] | None = None  # split-adjusted only


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
    split_f, _ = factors(days, actions, dividends=False)
    adj_close = close * price_f
    last = len(days) - 1
    bases: dict[str, float | None] = {}
    price_bases: dict[str, float | None] = {}
    for period, i in base_positions(days, last).items():
        if period != "1d":
            bases[period] = float(adj_close[i]) if i is not None else None
            price_bases[period] = float(close[i] * split_f[i]) if i is not None else None
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
        price_bases=price_bases,
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
    """Per session: sum of weights x price returns, sum of weights x total returns, sum of
    weights, constituents."""

    weighted: F64
    weighted_total: F64
    weights: F64
    count: npt.NDArray[np.int64]

    @classmethod
    def zeros(cls, n: int) -> IndexContribution:
        return cls(np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.int64))

    def __add__(self, other: IndexContribution) -> IndexContribution:
        return IndexContribution(
            self.weighted + other.weighted,
            self.weighted_total + other.weighted_total,
            self.weights + other.weights,
            self.count + other.count,
        )


def index_contribution(
    sessions: Days,
    security_ids: npt.NDArray[np.int32],
    days: Days,
    close: F64,
    shares: dict[int, float],
    actions: dict[int, list[Action]],
) -> IndexContribution:
    """What the rows (raw bars sorted by security, day) add to each session's index return:
    weight = the previous session's market value (split-adjusted close x shares outstanding
    today), price return from split-adjusted closes, total return from split- and
    dividend-adjusted closes, for securities that traded on both consecutive sessions."""
    n = len(sessions)
    out = IndexContribution.zeros(n)
    pos = np.searchsorted(sessions, days.astype("datetime64[D]"))
    for security_id, rows in group_slices(security_ids):
        if rows.stop - rows.start < 2:
            continue
        p = pos[rows]
        d = days[rows]
        found = actions.get(security_id, [])
        split_f, _ = factors(d, found, dividends=False)
        total_f, _ = factors(d, found)
        c = close[rows] * split_f
        t = close[rows] * total_f
        consecutive = p[1:] == p[:-1] + 1
        w = c[:-1] * shares.get(security_id, 0.0)
        target = p[1:][consecutive]
        np.add.at(out.weighted, target, (w * c[1:] / c[:-1])[consecutive])
        np.add.at(out.weighted_total, target, (w * t[1:] / t[:-1])[consecutive])
        np.add.at(out.weights, target, w[consecutive])
        np.add.at(out.count, target, 1)
    return out


def chain_index(
    contribution: IndexContribution,
    start_level: float = INDEX_BASE,
    start_total_level: float = INDEX_BASE,
) -> tuple[F64, F64, npt.NDArray[np.int64]]:
    """(price-return levels, total-return levels, constituents) per session from the
    contributions; the first session is the base."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = contribution.weights > 0
        growth = np.where(ok, contribution.weighted / contribution.weights, 1.0)
        growth_total = np.where(ok, contribution.weighted_total / contribution.weights, 1.0)
    growth[0] = growth_total[0] = 1.0
    return (
        start_level * growth.cumprod(),
        start_total_level * growth_total.cumprod(),
        contribution.count,
    )
