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
    bases: dict[str, F64]  # adjusted base closes by period (all but 1d)
    high_52w: F64
    low_52w: F64

    @classmethod
    def empty(cls) -> UniverseColumns:
        e = np.empty(0)
        return cls([], [], [], e, e, e, e, {p: e for p in SECTOR_PERIODS if p != "1d"}, e, e)

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
    finite = np.flatnonzero(np.isfinite(change))
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


def sectors(u: UniverseColumns) -> list[dict[str, Any]]:
    """Per sector: cap-weighted performance over :data:`SECTOR_PERIODS`, breadth, leaders."""
    change = u.change_percent
    names = np.array(u.sector)
    result = []
    for sector in sorted(set(u.sector)):
        members = np.flatnonzero(names == sector)
        cap = u.market_cap[members]
        perf: dict[str, float | None] = {}
        for period in SECTOR_PERIODS:
            base = u.previous_close[members] if period == "1d" else u.bases[period][members]
            with np.errstate(invalid="ignore", divide="ignore"):
                ret = u.price[members] / base - 1.0
            ok = np.isfinite(ret) & np.isfinite(cap) & (cap > 0)
            perf[period] = (
                round(float(np.sum(cap[ok] * ret[ok]) / np.sum(cap[ok])) * 100.0, 4)
                if ok.any()
                else None
            )
        finite = members[np.isfinite(change[members])]
        ordered = finite[np.argsort(-change[finite], kind="stable")]
        result.append(
            {
                "sector": sector,
                "securities": len(members),
                "market_cap": round(float(np.nansum(cap)), 2),
                "performance_percent": perf,
                "breadth": _breadth(change[members]),
                "leaders": [_mover(u, int(i), change) for i in ordered[:LEADERS]],
                "laggards": [_mover(u, int(i), change) for i in ordered[::-1][:LEADERS]],
            }
        )
    return result
