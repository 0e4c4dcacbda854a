"""Bar validation (what an import rejects, and why) and resampling to weeks and months."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np
import numpy.typing as npt

from services.market.domain import calendar

F64 = npt.NDArray[np.float64]

# Why a row is rejected, in the order the checks apply (a row gets the first that fails).
REASONS = (
    "not_a_number",
    "non_positive_price",
    "negative_volume",
    "high_below_low",
    "open_outside_range",
    "close_outside_range",
    "future_date",
    "not_a_session",
    "duplicate_day",
)


@dataclass(frozen=True)
class Validation:
    ok: npt.NDArray[np.bool_]
    reasons: list[str | None]  # per row, None when accepted


def validate(
    keys: npt.NDArray[np.int64],
    days: npt.NDArray[np.datetime64],
    open_: F64,
    high: F64,
    low: F64,
    close: F64,
    volume: F64,
    *,
    today: date,
) -> Validation:
    """Check each row; ``keys`` groups rows by security (duplicates are per key and day).

    ``volume`` is a float array so that a missing value (NaN) can be seen.
    """
    n = len(days)
    reason = np.full(n, -1, dtype=np.int64)

    def flag(mask: npt.NDArray[np.bool_] | np.bool_, code: int) -> None:
        reason[(reason < 0) & mask] = code

    prices = np.vstack([open_, high, low, close]) if n else np.empty((4, 0))
    flag(~np.isfinite(prices).all(axis=0) | ~np.isfinite(volume), 0)
    with np.errstate(invalid="ignore"):
        flag((prices <= 0).any(axis=0), 1)
        flag(volume < 0, 2)
        flag(high < low, 3)
        flag((open_ > high) | (open_ < low), 4)
        flag((close > high) | (close < low), 5)
    day_values = days.astype("datetime64[D]")
    flag(day_values > np.datetime64(today, "D"), 6)
    flag(~calendar.session_mask(day_values), 7)
    # A key+day seen earlier in the file: the first occurrence wins.
    if n:
        order = np.lexsort((np.arange(n), day_values.astype(np.int64), keys))
        sorted_keys = keys[order]
        sorted_days = day_values[order]
        repeat = np.zeros(n, dtype=bool)
        repeat[1:] = (sorted_keys[1:] == sorted_keys[:-1]) & (sorted_days[1:] == sorted_days[:-1])
        duplicate = np.zeros(n, dtype=bool)
        duplicate[order] = repeat
        flag(duplicate, 8)
    return Validation(reason < 0, [REASONS[r] if r >= 0 else None for r in reason.tolist()])


@dataclass(frozen=True)
class Resampled:
    period: npt.NDArray[np.datetime64]  # the period's first calendar day (Monday, 1st)
    open: F64
    high: F64
    low: F64
    close: F64
    volume: npt.NDArray[np.float64]
    last_day: npt.NDArray[np.datetime64]


def period_start(
    days: npt.NDArray[np.datetime64], interval: Literal["weekly", "monthly"]
) -> npt.NDArray[np.datetime64]:
    d = days.astype("datetime64[D]")
    if interval == "monthly":
        return d.astype("datetime64[M]").astype("datetime64[D]")
    # 1970-01-01 was a Thursday: shift so weeks start on Monday (as date_trunc/time_bucket).
    n = d.astype(np.int64)
    return (n - (n + 3) % 7).astype("datetime64[D]")


def resample(
    days: npt.NDArray[np.datetime64],
    open_: F64,
    high: F64,
    low: F64,
    close: F64,
    volume: npt.NDArray[np.float64] | npt.NDArray[np.int64],
    interval: Literal["weekly", "monthly"],
) -> Resampled:
    """Bars (oldest first) grouped by week or month: first open, max high, min low, last
    close, summed volume."""
    if len(days) == 0:
        empty = np.empty(0)
        return Resampled(days[:0], empty, empty, empty, empty, empty, days[:0])
    keys = period_start(days, interval)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(days)] - 1
    return Resampled(
        period=keys[starts],
        open=open_[starts],
        high=np.maximum.reduceat(high, starts),
        low=np.minimum.reduceat(low, starts),
        close=close[ends],
        volume=np.add.reduceat(np.asarray(volume, dtype=np.float64), starts),
        last_day=days.astype("datetime64[D]")[ends],
    )
