"""Split and dividend adjustment, applied at read time to raw bars.

A bar before an action's ex-date is multiplied by the action's price factor so that it is
comparable with prices on and after the ex-date: ``1 / ratio`` for a split (2 for a
2-for-1, 0.1 for a 1-for-10 reverse split) and ``1 - amount / previous close`` for a cash
dividend (the CRSP/Yahoo convention). Factors compound backwards from the most recent
action. Split-adjusted volumes are multiplied by the ratio (shares counted in today's units).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np
import numpy.typing as npt

ActionKind = Literal["split", "dividend"]


@dataclass(frozen=True)
class Action:
    ex_date: date
    kind: ActionKind
    value: float  # split ratio (new shares per old share) or cash amount per share
    price_factor: float | None = None  # known once the close before ex_date is known


def split_factor(ratio: float) -> float:
    if ratio <= 0:
        raise ValueError("a split ratio is positive")
    return 1.0 / ratio


def dividend_factor(amount: float, previous_close: float) -> float:
    """``1 - amount / previous_close``; a dividend at or above the close is not a cash
    dividend we can adjust for (ValueError)."""
    if previous_close <= 0 or not 0 < amount < previous_close:
        raise ValueError("a dividend must be positive and below the previous close")
    return 1.0 - amount / previous_close


def price_factor_of(action: Action) -> float | None:
    if action.kind == "split":
        return split_factor(action.value)
    return action.price_factor


def factors(
    days: npt.NDArray[np.datetime64],
    actions: list[Action],
    *,
    splits: bool = True,
    dividends: bool = True,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(price factor, volume factor) for each of ``days``: the product over the actions
    whose ex-date is after that day. Dividends whose factor is unknown are skipped."""
    chosen: list[tuple[np.datetime64, float, float]] = []
    for action in actions:
        if action.kind == "split" and splits:
            chosen.append(
                (np.datetime64(action.ex_date, "D"), split_factor(action.value), action.value)
            )
        elif action.kind == "dividend" and dividends and action.price_factor is not None:
            chosen.append((np.datetime64(action.ex_date, "D"), action.price_factor, 1.0))
    n = len(days)
    if not chosen:
        return np.ones(n), np.ones(n)
    chosen.sort(key=lambda item: item[0])
    ex_dates = np.array([item[0] for item in chosen], dtype="datetime64[D]")
    price = np.array([item[1] for item in chosen])
    volume = np.array([item[2] for item in chosen])
    # suffix[k] = product of factors of actions k.. (the ones after a day whose first later
    # action is k); suffix[len] = 1.
    price_suffix = np.append(np.cumprod(price[::-1])[::-1], 1.0)
    volume_suffix = np.append(np.cumprod(volume[::-1])[::-1], 1.0)
    first_after = np.searchsorted(ex_dates, days.astype("datetime64[D]"), side="right")
    return price_suffix[first_after], volume_suffix[first_after]


def adjust(
    days: npt.NDArray[np.datetime64],
    prices: tuple[npt.NDArray[np.float64], ...],
    volume: npt.NDArray[np.int64],
    actions: list[Action],
    *,
    splits: bool = True,
    dividends: bool = True,
) -> tuple[tuple[npt.NDArray[np.float64], ...], npt.NDArray[np.float64]]:
    """Adjusted copies of ``prices`` (any number of price columns) and ``volume``."""
    price_f, volume_f = factors(days, actions, splits=splits, dividends=dividends)
    return tuple(p * price_f for p in prices), volume * volume_f
