"""Use cases about one security or a list of them: listing, detail, price history,
technical analysis and the model's view of it. No FastAPI here; raises domain errors."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import asyncpg
import numpy as np
import numpy.typing as npt

from services.market.domain import Quote, Security, StockFilter
from services.market.domain import adjustment as adj
from services.market.domain.analysis import analyse
from services.market.domain.bars import resample
from services.market.domain.model_view import ModelView
from services.market.errors import InvalidDateRangeError, StockNotFoundError
from services.market.repository import bars as bars_repo
from services.market.repository import model_view as model_view_repo
from services.market.repository import securities, stats
from services.market.schemas import STOCKS_CURSOR, StockPosition
from shared.pagination import CursorKey, InvalidCursorError

Interval = Literal["daily", "weekly", "monthly"]

SMALL_SERIES = 2000  # bars adjusted on the event loop; longer series go to a thread
BETA_INDEX_DAYS = 400  # calendar days of index an analysis reads: 252 sessions and margin


async def list_stocks(
    conn: asyncpg.Connection,
    *,
    limit: int,
    cursor: str | None,
    cursor_key: CursorKey,
    filters: StockFilter,
    sort: str,
    descending: bool,
) -> tuple[list[tuple[Security, Quote | None]], str | None]:
    """One page of securities and the cursor of the next page (None on the last).

    The cursor holds the sort it was made for; reusing it with another sort is refused.
    """
    after = None
    if cursor:
        position = STOCKS_CURSOR.decode(cursor_key, cursor)
        if position.sort != f"{'-' if descending else ''}{sort}":
            raise InvalidCursorError("The cursor belongs to another sort order.")
        after = (position.value, position.ticker)
    rows = await securities.list_securities(
        conn, limit=limit + 1, filters=filters, sort=sort, descending=descending, after=after
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last_security, _, last_value = rows[-1]
        position = StockPosition(
            sort=f"{'-' if descending else ''}{sort}",
            value=last_value if isinstance(last_value, str) else float(last_value),
            ticker=last_security.ticker,
        )
        next_cursor = STOCKS_CURSOR.encode(cursor_key, position)
    return [(s, q) for s, q, _ in rows], next_cursor


async def get_stock(conn: asyncpg.Connection, ticker: str) -> tuple[Security, Quote | None]:
    found = await securities.get_security(conn, ticker)
    if found is None:
        raise StockNotFoundError(ticker)
    return found


@dataclass(frozen=True)
class PriceSeries:
    security: Security
    interval: Interval
    adjusted: bool
    period: npt.NDArray[np.datetime64]  # the bar's day, or its period's first day
    open: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    low: npt.NDArray[np.float64]
    close: npt.NDArray[np.float64]
    volume: npt.NDArray[np.float64]
    last_day: npt.NDArray[np.datetime64]


def default_range(start: date | None, end: date | None, today: date) -> tuple[date, date]:
    end = end or today
    start = start or (end - timedelta(days=365))
    if start > end:
        raise InvalidDateRangeError(start, end)
    return start, end


async def price_history(
    conn: asyncpg.Connection,
    ticker: str,
    *,
    start: date,
    end: date,
    interval: Interval,
    adjusted: bool,
) -> PriceSeries:
    """Bars of ``ticker`` between ``start`` and ``end``; adjusted at read time from the
    stored corporate actions when ``adjusted``."""
    # Weekly and monthly: whole periods that overlap [start, end], at both ends — the
    # first bar holds the period's sessions before ``start``, the last those after ``end``
    # (docs/market.md). A period still under way ends with the last session stored.
    read_start = start if interval == "daily" else _period_floor(start, interval)
    end = end if interval == "daily" else _period_ceiling(end, interval)
    if interval != "daily" and not adjusted:
        security = await _security(conn, ticker)
        assert security.security_id is not None
        rows = await bars_repo.period_history(conn, security.security_id, read_start, end, interval)
        return _from_period_rows(security, interval, rows)
    found = await bars_repo.history_by_ticker(conn, ticker, read_start, end, actions=adjusted)
    if found is None:
        raise StockNotFoundError(ticker)
    security, bars, actions = found
    if len(bars) <= SMALL_SERIES:
        # Adjusting a few hundred bars takes microseconds: a thread hop would cost more.
        return _shape(security, bars, actions, interval, adjusted)
    return await asyncio.to_thread(_shape, security, bars, actions, interval, adjusted)


def _period_floor(day: date, interval: Interval) -> date:
    if interval == "monthly":
        return day.replace(day=1)
    return day - timedelta(days=day.weekday())


def _period_ceiling(day: date, interval: Interval) -> date:
    if interval == "monthly":
        following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
        return following - timedelta(days=1)
    return day + timedelta(days=6 - day.weekday())


def _shape(
    security: Security,
    bars: bars_repo.BarArrays,
    actions: list[adj.Action],
    interval: Interval,
    adjusted: bool,
) -> PriceSeries:
    (o, h, lo, c), v = (
        adj.adjust(bars.day, (bars.open, bars.high, bars.low, bars.close), bars.volume, actions)
        if adjusted
        else ((bars.open, bars.high, bars.low, bars.close), bars.volume.astype(float))
    )
    if interval == "daily":
        return PriceSeries(security, interval, adjusted, bars.day, o, h, lo, c, v, bars.day)
    r = resample(bars.day, o, h, lo, c, v, interval)
    return PriceSeries(
        security, interval, adjusted, r.period, r.open, r.high, r.low, r.close, r.volume, r.last_day
    )


def _from_period_rows(
    security: Security,
    interval: Interval,
    rows: list[tuple[date, float, float, float, float, int, date]],
) -> PriceSeries:
    def col(k: int) -> npt.NDArray[np.float64]:
        return np.array([r[k] for r in rows], dtype=np.float64)

    return PriceSeries(
        security,
        interval,
        False,
        np.array([r[0] for r in rows], dtype="datetime64[D]"),
        col(1),
        col(2),
        col(3),
        col(4),
        col(5),
        np.array([r[6] for r in rows], dtype="datetime64[D]"),
    )


async def _security(conn: asyncpg.Connection, ticker: str) -> Security:
    found = await securities.get_security(conn, ticker)
    if found is None:
        raise StockNotFoundError(ticker)
    return found[0]


async def analysis(
    conn: asyncpg.Connection, ticker: str
) -> tuple[Security, float | None, dict[str, Any]]:
    """The technical analysis of ``ticker`` over its whole adjusted daily history, with its
    live price (None without a quote)."""
    end = date.today()
    start = date(1900, 1, 1)  # the whole history: recursive indicators depend on its start
    found = await bars_repo.history_by_ticker(conn, ticker, start, end, actions=True)
    if found is None:
        raise StockNotFoundError(ticker)
    security, bars, actions = found
    assert security.security_id is not None
    # Beta needs the index over its window only (252 sessions), not the whole history.
    market_days, market_levels, rs_universe, rs_sector, live = await stats.index_and_strength(
        conn, security.security_id, ticker, end - timedelta(days=BETA_INDEX_DAYS), end
    )

    def compute() -> dict[str, Any]:
        (high, low, close), volume = adj.adjust(
            bars.day, (bars.high, bars.low, bars.close), bars.volume, actions
        )
        return analyse(
            bars.day,
            high,
            low,
            close,
            volume,
            market_days=market_days,
            market_levels=market_levels,
            rs_universe=rs_universe,
            rs_sector=rs_sector,
        )

    return security, live, await asyncio.to_thread(compute)


async def model_view(conn: asyncpg.Connection, ticker: str) -> ModelView:
    """The model's view of ``ticker``: the latest recommendation run market holds and the
    ticker's call in it (see :mod:`services.market.model_view`)."""
    run, call = await model_view_repo.view_of(conn, ticker)
    return ModelView(run, call)
