"""Universe-wide views from live quotes and stored statistics: breadth, movers, 52-week
highs and lows, the live index level, and per-sector performance (all vectorised)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

SECTOR_PERIODS = ("1d", "1w", "1m", "3m", "ytd", "1y")
MOVERS = 10
LEADERS = 3

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class UniverseColumns:
    """The listed universe with live quotes and stored stats, one array per field
    (NaN where unknown)."""

    ticker: list[str]
    name: list[str]
    sector: list[str]
    price: F64
    previous_close: F64
    volume: F64
    market_cap: F64
    bases: dict[str, F64]  # split- and dividend-adjusted base closes by period (all but 1d)
    high_52w: F64
    low_52w: F64
    price_bases: dict[str, F64]  # split-adjusted base closes by period (all but 1d)

    @classmethod
    def empty(cls) -> UniverseColumns:
        e = np.empty(0)
        periods = {p: e for p in SECTOR_PERIODS if p != "1d"}
        return cls([], [], [], e, e, e, e, periods, e, e, dict(periods))

    def __len__(self) -> int:
        return len(self.ticker)

    @property
    def change_percent(self) -> F64:
        with np.errstate(invalid="ignore", divide="ignore"):
            result: F64 = (self.price / self.previous_close - 1.0) * 100.0
        return result


def _mover(u: UniverseColumns, i: int, change: F64) -> dict[str, Any]:
    return {
        "ticker": u.ticker[i],
        "name": u.name[i],
        "sector": u.sector[i],
        "price": round(float(u.price[i]), 4),
        "change_percent": None if np.isnan(change[i]) else round(float(change[i]), 4),
        "volume": int(u.volume[i]),
    }


def _breadth(change: F64) -> dict[str, int]:
    known = change[np.isfinite(change)]
    return {
        "advancers": int((known > 0).sum()),
        "decliners": int((known < 0).sum()),
        "unchanged": int((known == 0).sum()),
        "total": len(change),
    }


def overview(u: UniverseColumns, *, previous_index_level: float | None) -> dict[str, Any]:
    """Breadth, the live index, gainers / losers / most active, new 52-week highs / lows."""
    change = u.change_percent
    # Movers are securities that traded today: a quote without volume has not moved.
    finite = np.flatnonzero(np.isfinite(change) & (u.volume > 0))
    by_change = finite[np.argsort(change[finite], kind="stable")]
    gainers = [int(i) for i in by_change[::-1][:MOVERS] if change[i] > 0]
    losers = [int(i) for i in by_change[:MOVERS] if change[i] < 0]
    active = [int(i) for i in np.argsort(-u.volume, kind="stable")[:MOVERS]]
    with np.errstate(invalid="ignore"):
        highs = np.flatnonzero(u.price >= u.high_52w)
        lows = np.flatnonzero(u.price <= u.low_52w)
    # Live index: the last stored level moved by the cap-weighted change since the previous
    # close (weights = previous market capitalisation).
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = u.market_cap * u.previous_close / u.price
    ok = np.isfinite(weight) & np.isfinite(change)
    growth = (
        float(np.sum(weight[ok] * u.price[ok] / u.previous_close[ok]) / np.sum(weight[ok]))
        if ok.any()
        else 1.0
    )
    level = previous_index_level * growth if previous_index_level is not None else None
    return {
        "breadth": _breadth(change),
        "index": {
            "name": "Bourse universe index (cap-weighted, price return)",
            "level": None if level is None else round(level, 4),
            "previous_close": None
            if previous_index_level is None
            else round(previous_index_level, 4),
            "change_percent": None if level is None else round((growth - 1.0) * 100.0, 4),
            "constituents": int(ok.sum()),
        },
        "top_gainers": [_mover(u, i, change) for i in gainers],
        "top_losers": [_mover(u, i, change) for i in losers],
        "most_active": [_mover(u, i, change) for i in active],
        "new_52w_highs": {"count": len(highs), "tickers": sorted(u.ticker[i] for i in highs)[:50]},
        "new_52w_lows": {"count": len(lows), "tickers": sorted(u.ticker[i] for i in lows)[:50]},
    }


SECTOR_METHODOLOGY = (
    "performance_percent: cap-weighted price return, the change of the sector's market value"
    " with share counts held at today's shares outstanding: sum(shares x price now) /"
    " sum(shares x split-adjusted close at the period's start) - 1, over the sector's listed"
    " securities that traded at the start of the period. equal_weighted_percent: the mean of"
    " the same securities' price returns. total_return_percent: cap-weighted (market value at"
    " the start) mean of their total returns (split- and dividend-adjusted closes, dividends"
    " reinvested). A period starts at the last close on or before the same day a week, 1, 3"
    " or 12 months earlier (ytd: December 31 of the previous year); 1d starts at the previous"
    " close (dividends going ex today are not in 1d). Price now: the live quote."
    " Delisted securities are not members."
)


def sector_performance(
    price: F64, shares: F64, price_base: F64, total_base: F64
) -> tuple[float | None, float | None, float | None]:
    """(cap-weighted price return, equal-weighted price return, cap-weighted total return)
    in percent of one sector over one period; members without a base are left out."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = (
            np.isfinite(price)
            & np.isfinite(shares)
            & (shares > 0)
            & np.isfinite(price_base)
            & (price_base > 0)
            & np.isfinite(total_base)
            & (total_base > 0)
        )
    if not ok.any():
        return None, None, None
    p, s, pb, tb = price[ok], shares[ok], price_base[ok], total_base[ok]
    start_value = s * pb
    cap = float(np.sum(s * p) / np.sum(start_value) - 1.0)
    equal = float(np.mean(p / pb - 1.0))
    total = float(np.sum(start_value * (p / tb)) / np.sum(start_value) - 1.0)
    return round(cap * 100.0, 4), round(equal * 100.0, 4), round(total * 100.0, 4)


def sectors(u: UniverseColumns) -> list[dict[str, Any]]:
    """Per sector: performance over :data:`SECTOR_PERIODS` (cap-weighted, equal-weighted,
    total return: :data:`SECTOR_METHODOLOGY`), breadth, leaders."""
    change = u.change_percent
    names = np.array(u.sector)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = u.market_cap / u.price
    result = []
    for sector in sorted(set(u.sector)):
        members = np.flatnonzero(names == sector)
        cap = u.market_cap[members]
        perf: dict[str, float | None] = {}
        equal: dict[str, float | None] = {}
        total: dict[str, float | None] = {}
        for period in SECTOR_PERIODS:
            if period == "1d":
                price_base = total_base = u.previous_close[members]
            else:
                price_base = u.price_bases[period][members]
                total_base = u.bases[period][members]
            perf[period], equal[period], total[period] = sector_performance(
                u.price[members], shares[members], price_base, total_base
            )
        finite = members[np.isfinite(change[members])]
        ordered = finite[np.argsort(-change[finite], kind="stable")]
        result.append(
            {
                "sector": sector,
                "securities": len(members),
                "market_cap": round(float(np.nansum(cap)), 2),
                "performance_percent": perf,
                "equal_weighted_percent": equal,
                "total_return_percent": total,
                "breadth": _breadth(change[members]),
                "leaders": [_mover(u, int(i), change) for i in ordered[:LEADERS]],
                "laggards": [_mover(u, int(i), change) for i in ordered[::-1][:LEADERS]],
            }
        )
    return result
