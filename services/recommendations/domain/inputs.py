"""Assembling the model's price panel from per-security series (pure).

Market answers either one series per security (its sessions and adjusted closes) or blocks
of securities on a shared calendar (``market.rpc.closes``); the model wants one matrix on
one session calendar. The calendar is the union of every series' sessions,
and a security without a bar on a session has NaN there. The benchmark index's levels are
put on the same calendar.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from services.recommendations.domain.factors import CorporateAction, FloatArray, Panel


@dataclass(frozen=True)
class Series:
    ticker: str
    dates: Sequence[str]  # ISO dates, ascending
    closes: Sequence[float]
    volumes: Sequence[float] | None = None


@dataclass(frozen=True)
class IndexLevels:
    """An index's daily levels as market serves them."""

    dates: Sequence[str]  # ISO dates, ascending
    levels: Sequence[float]

    def on(self, calendar: npt.NDArray[np.datetime64]) -> FloatArray:
        """The levels on ``calendar``'s sessions, NaN where the index has none."""
        out = np.full(len(calendar), np.nan)
        if not len(self.dates):
            return out
        days = np.array(self.dates, dtype="datetime64[D]")
        at = np.minimum(np.searchsorted(days, calendar), len(days) - 1)
        found = days[at] == calendar
        out[found] = np.asarray(self.levels, dtype=np.float64)[at[found]]
        return out


def build_panel(
    series: Sequence[Series],
    *,
    sectors: Mapping[str, str | None],
    sources: Mapping[str, tuple[str, ...]],
    actions: Mapping[str, tuple[CorporateAction, ...]] | None = None,
    benchmark: IndexLevels | None = None,
) -> Panel:
    """One matrix from ``series`` (securities with no bar at all are left out), with the
    ``benchmark`` index's levels on its calendar."""
    kept = [s for s in series if len(s.dates)]
    if not kept:
        raise ValueError("no price data")
    days = [np.array(s.dates, dtype="datetime64[D]") for s in kept]
    calendar = np.unique(np.concatenate(days))
    closes = np.full((len(kept), len(calendar)), np.nan)
    with_volumes = any(s.volumes is not None for s in kept)
    volumes = np.full(closes.shape, np.nan) if with_volumes else None
    for i, (s, d) in enumerate(zip(kept, days, strict=True)):
        columns = np.searchsorted(calendar, d)
        closes[i, columns] = np.asarray(s.closes, dtype=np.float64)
        if volumes is not None and s.volumes is not None:
            volumes[i, columns] = np.asarray(s.volumes, dtype=np.float64)
    tickers = tuple(s.ticker for s in kept)
    return Panel(
        tickers=tickers,
        sectors=tuple(sectors.get(t) for t in tickers),
        sessions=calendar,
        closes=closes,
        volumes=volumes,
        actions=dict(actions or {}),
        sources={t: sources[t] for t in tickers if t in sources},
        benchmark=None if benchmark is None else benchmark.on(calendar),
    )


@dataclass(frozen=True)
class Block:
    """Securities on one session calendar, as one reply of market's columnar history
    carries them: ``closes`` and ``volumes`` are ``len(tickers) x len(sessions)`` matrices
    flattened row by row (None: no bar)."""

    sessions: Sequence[str]  # ISO dates, ascending
    tickers: Sequence[str]
    closes: Sequence[float | None]
    volumes: Sequence[float | None]


def panel_from_blocks(
    blocks: Sequence[Block],
    *,
    sectors: Mapping[str, str | None],
    sources: Mapping[str, tuple[str, ...]],
    actions: Mapping[str, tuple[CorporateAction, ...]] | None = None,
    benchmark: IndexLevels | None = None,
) -> Panel:
    """One matrix from ``blocks``, on the union of their calendars, as
    :func:`build_panel` makes from series: securities with no bar at all and sessions no
    security has a bar on (market's calendar runs to ``end``, its bars to the last stored
    session) are left out. Each block lands with one vectorised assignment."""
    kept = [b for b in blocks if len(b.tickers)]
    days = [np.array(b.sessions, dtype="datetime64[D]") for b in kept]
    calendar = np.unique(np.concatenate(days)) if days else np.array([], dtype="datetime64[D]")
    rows = sum(len(b.tickers) for b in kept)
    closes = np.full((rows, len(calendar)), np.nan)
    volumes = np.full(closes.shape, np.nan)
    at = 0
    for block, d in zip(kept, days, strict=True):
        n = len(block.tickers)
        columns = np.searchsorted(calendar, d)
        shape = (n, len(d))
        closes[at : at + n, columns] = np.array(block.closes, dtype=np.float64).reshape(shape)
        volumes[at : at + n, columns] = np.array(block.volumes, dtype=np.float64).reshape(shape)
        at += n
    tickers = [t for b in kept for t in b.tickers]
    present = ~np.all(np.isnan(closes), axis=1)
    if not present.any():
        raise ValueError("no price data")
    traded = ~np.all(np.isnan(closes), axis=0)
    calendar, closes, volumes = calendar[traded], closes[:, traded], volumes[:, traded]
    kept_tickers = tuple(t for t, keep in zip(tickers, present, strict=True) if keep)
    named = set(kept_tickers)
    return Panel(
        tickers=kept_tickers,
        sectors=tuple(sectors.get(t) for t in kept_tickers),
        sessions=calendar,
        closes=closes[present],
        volumes=volumes[present],
        actions={t: a for t, a in (actions or {}).items() if t in named},
        sources={t: sources[t] for t in kept_tickers if t in sources},
        benchmark=None if benchmark is None else benchmark.on(calendar),
    )


def month_ends(panel: Panel, *, min_sessions: int) -> list[date]:
    """The last session of each calendar month of ``panel``, once ``min_sessions`` sessions
    of history precede it (the backtest's call dates). The panel's last month counts only
    if it is over: its last session is not a month-end yet."""
    days = panel.sessions
    months = days.astype("datetime64[M]")
    last_of_month = np.flatnonzero(months[1:] != months[:-1])
    return [days[i].astype(object) for i in last_of_month if i + 1 >= min_sessions]
