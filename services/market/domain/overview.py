"""Universe-wide views from live quotes and stored statistics: breadth, movers, 52-week
highs and lows, the live index level, and per-sector performance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

SECTOR_PERIODS = ("1d", "1w", "1m", "3m", "ytd", "1y")
MOVERS = 10
LEADERS = 3


class UniverseMember(Protocol):
    @property
    def ticker(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def sector(self) -> str: ...
    @property
    def price(self) -> float: ...
    @property
    def previous_close(self) -> float | None: ...
    @property
    def volume(self) -> int: ...
    @property
    def market_cap(self) -> float | None: ...
    @property
    def bases(self) -> dict[str, float | None]: ...
    @property
    def high_52w(self) -> float | None: ...
    @property
    def low_52w(self) -> float | None: ...


@dataclass(frozen=True)
class _Arrays:
    price: npt.NDArray[np.float64]
    previous: npt.NDArray[np.float64]
    change: npt.NDArray[np.float64]  # percent
    volume: npt.NDArray[np.float64]
    cap: npt.NDArray[np.float64]
    bases: dict[str, npt.NDArray[np.float64]]
    high: npt.NDArray[np.float64]
    low: npt.NDArray[np.float64]


def _f(value: float | None) -> float:
    return np.nan if value is None else float(value)


def _arrays(rows: Sequence[UniverseMember]) -> _Arrays:
    price = np.array([r.price for r in rows], dtype=np.float64)
    previous = np.array([_f(r.previous_close) for r in rows])
    with np.errstate(invalid="ignore", divide="ignore"):
        change = (price / previous - 1.0) * 100.0
    return _Arrays(
        price=price,
        previous=previous,
        change=change,
        volume=np.array([r.volume for r in rows], dtype=np.float64),
        cap=np.array([_f(r.market_cap) for r in rows]),
        bases={
            p: np.array([_f(r.bases.get(p)) for r in rows]) for p in SECTOR_PERIODS if p != "1d"
        },
        high=np.array([_f(r.high_52w) for r in rows]),
        low=np.array([_f(r.low_52w) for r in rows]),
    )


def _mover(row: UniverseMember, change: float) -> dict[str, Any]:
    return {
        "ticker": row.ticker,
        "name": row.name,
        "sector": row.sector,
        "price": round(row.price, 4),
        "change_percent": None if np.isnan(change) else round(float(change), 4),
        "volume": row.volume,
    }


def _breadth(change: npt.NDArray[np.float64]) -> dict[str, int]:
    known = change[np.isfinite(change)]
    return {
        "advancers": int((known > 0).sum()),
        "decliners": int((known < 0).sum()),
        "unchanged": int((known == 0).sum()),
        "total": len(change),
    }


def overview(
    rows: Sequence[UniverseMember], *, previous_index_level: float | None
) -> dict[str, Any]:
    """Breadth, the live index, gainers / losers / most active, new 52-week highs / lows."""
    a = _arrays(rows)
    finite = np.flatnonzero(np.isfinite(a.change))
    by_change = finite[np.argsort(a.change[finite], kind="stable")]
    gainers = [i for i in by_change[::-1][:MOVERS] if a.change[i] > 0]
    losers = [i for i in by_change[:MOVERS] if a.change[i] < 0]
    active = np.argsort(-a.volume, kind="stable")[:MOVERS]
    with np.errstate(invalid="ignore"):
        highs = np.flatnonzero(a.price >= a.high)
        lows = np.flatnonzero(a.price <= a.low)
    # Live index: the last stored level moved by the cap-weighted change since the previous
    # close (weights = previous market capitalisation).
    weight = a.cap * a.previous / a.price
    ok = np.isfinite(weight) & np.isfinite(a.change)
    growth = (
        float(np.sum(weight[ok] * a.price[ok] / a.previous[ok]) / np.sum(weight[ok]))
        if ok.any()
        else 1.0
    )
    level = previous_index_level * growth if previous_index_level is not None else None
    return {
        "breadth": _breadth(a.change),
        "index": {
            "name": "Bourse universe index (cap-weighted, price return)",
            "level": None if level is None else round(level, 4),
            "previous_close": None
            if previous_index_level is None
            else round(previous_index_level, 4),
            "change_percent": None if level is None else round((growth - 1.0) * 100.0, 4),
            "constituents": int(ok.sum()),
        },
        "top_gainers": [_mover(rows[i], a.change[i]) for i in gainers],
        "top_losers": [_mover(rows[i], a.change[i]) for i in losers],
        "most_active": [_mover(rows[i], a.change[i]) for i in active],
        "new_52w_highs": {
            "count": len(highs),
            "tickers": sorted(rows[i].ticker for i in highs)[:50],
        },
        "new_52w_lows": {
            "count": len(lows),
            "tickers": sorted(rows[i].ticker for i in lows)[:50],
        },
    }


def sectors(rows: Sequence[UniverseMember]) -> list[dict[str, Any]]:
    """Per sector: cap-weighted performance over :data:`SECTOR_PERIODS`, breadth, leaders."""
    a = _arrays(rows)
    names = np.array([r.sector for r in rows])
    result = []
    for sector in sorted(set(names.tolist())):
        members = np.flatnonzero(names == sector)
        perf: dict[str, float | None] = {}
        for period in SECTOR_PERIODS:
            base = a.previous[members] if period == "1d" else a.bases[period][members]
            cap = a.cap[members]
            with np.errstate(invalid="ignore", divide="ignore"):
                ret = a.price[members] / base - 1.0
            ok = np.isfinite(ret) & np.isfinite(cap) & (cap > 0)
            perf[period] = (
                round(float(np.sum(cap[ok] * ret[ok]) / np.sum(cap[ok])) * 100.0, 4)
                if ok.any()
                else None
            )
        changes = a.change[members]
        finite = members[np.isfinite(changes)]
        ordered = finite[np.argsort(-a.change[finite], kind="stable")]
        result.append(
            {
                "sector": sector,
                "securities": len(members),
                "market_cap": round(float(np.nansum(a.cap[members])), 2),
                "performance_percent": perf,
                "breadth": _breadth(changes),
                "leaders": [_mover(rows[i], a.change[i]) for i in ordered[:LEADERS]],
                "laggards": [_mover(rows[i], a.change[i]) for i in ordered[::-1][:LEADERS]],
            }
        )
    return result
