"""Derived statistics: per-security stats, the universe index, and the universe-wide
reads built on them (overview, sectors)."""

from __future__ import annotations

from datetime import date

import asyncpg
import numpy as np
import numpy.typing as npt

from services.market.domain.overview import UniverseColumns
from services.market.domain.statistics import SecurityStats


async def shares_by_security(conn: asyncpg.Connection) -> dict[int, float]:
    rows = await conn.fetch(
        "SELECT security_id, shares_outstanding FROM securities"
        " WHERE shares_outstanding IS NOT NULL"
    )
    return {r[0]: float(r[1]) for r in rows}


async def write_stats(
    conn: asyncpg.Connection,
    stats: list[SecurityStats],
    rs_universe: list[float | None],
    rs_sector: list[float | None],
) -> None:
    await conn.execute("DELETE FROM security_stats")
    await conn.copy_records_to_table(
        "security_stats",
        records=[
            (
                s.security_id,
                s.as_of,
                s.close,
                s.bases.get("1w"),
                s.bases.get("1m"),
                s.bases.get("3m"),
                s.bases.get("6m"),
                s.bases.get("ytd"),
                s.bases.get("1y"),
                *((s.price_bases or {}).get(p) for p in _PERIOD_COLUMNS),
                s.high_52w,
                s.low_52w,
                s.avg_volume_30d,
                s.daily_volatility,
                s.return_1y,
                ru,
                rsec,
            )
            for s, ru, rsec in zip(stats, rs_universe, rs_sector, strict=True)
        ],
        columns=(
            "security_id",
            "as_of",
            "close",
            "base_1w",
            "base_1m",
            "base_3m",
            "base_6m",
            "base_ytd",
            "base_1y",
            *(f"price_base_{p}" for p in _PERIOD_COLUMNS),
            "high_52w",
            "low_52w",
            "avg_volume_30d",
            "daily_volatility",
            "return_1y",
            "rs_universe",
            "rs_sector",
        ),
    )


async def sector_of(conn: asyncpg.Connection) -> dict[int, str]:
    return {r[0]: r[1] for r in await conn.fetch("SELECT security_id, sector FROM securities")}


async def latest_index_day(conn: asyncpg.Connection) -> date | None:
    """The last session with an index level (= the last session with bars, once derived
    data is refreshed): one index probe, where max(day) over the bars scans them."""
    day: date | None = await conn.fetchval("SELECT max(day) FROM market_index")
    return day


async def latest_stats_day(conn: asyncpg.Connection) -> date | None:
    day: date | None = await conn.fetchval("SELECT max(as_of) FROM security_stats")
    return day


async def index_level_before(
    conn: asyncpg.Connection, day: date
) -> tuple[date, float, float] | None:
    """(day, price-return level, total-return level) of the last session before ``day``."""
    row = await conn.fetchrow(
        "SELECT day, level, total_return_level FROM market_index WHERE day < $1"
        " ORDER BY day DESC LIMIT 1",
        day,
    )
    return (row["day"], row["level"], row["total_return_level"]) if row else None


async def write_index(
    conn: asyncpg.Connection, rows: list[tuple[date, float, float, int]], *, since: date
) -> None:
    await conn.execute("DELETE FROM market_index WHERE day >= $1", since)
    await conn.copy_records_to_table(
        "market_index",
        records=rows,
        columns=("day", "level", "total_return_level", "constituents"),
    )


async def index_history(
    conn: asyncpg.Connection, start: date, end: date
) -> list[tuple[date, float, float, int]]:
    """(day, price-return level, total-return level, constituents) from ``start`` to ``end``."""
    rows = await conn.fetch(
        "SELECT day, level, total_return_level, constituents FROM market_index"
        " WHERE day BETWEEN $1 AND $2 ORDER BY day",
        start,
        end,
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def index_and_strength(
    conn: asyncpg.Connection, security_id: int, ticker: str, start: date, end: date
) -> tuple[
    npt.NDArray[np.datetime64], npt.NDArray[np.float64], float | None, float | None, float | None
]:
    """The total-return index's (days, levels) from ``start`` to ``end`` (the benchmark of
    betas, which are computed on dividend-adjusted closes), the security's relative
    strength percentiles (universe, sector) and its live price, in one round trip."""
    row = await conn.fetchrow(
        "SELECT i.days, i.levels, t.rs_universe, t.rs_sector, q.price"
        " FROM (SELECT array_agg(day) AS days, array_agg(total_return_level) AS levels FROM ("
        "   SELECT day, total_return_level FROM market_index WHERE day BETWEEN $2 AND $3"
        "   ORDER BY day) x) i"
        " LEFT JOIN security_stats t ON t.security_id = $1"
        " LEFT JOIN latest_quotes q ON q.ticker = $4",
        security_id,
        start,
        end,
        ticker,
    )
    assert row is not None
    if row["days"] is None:
        days, levels = np.empty(0, dtype="datetime64[D]"), np.empty(0)
    else:
        days = np.array(row["days"], dtype="datetime64[D]")
        levels = np.array(row["levels"], dtype=np.float64)
    return days, levels, row["rs_universe"], row["rs_sector"], row["price"]


_PERIOD_COLUMNS = ("1w", "1m", "3m", "6m", "ytd", "1y")


async def universe_columns(conn: asyncpg.Connection) -> UniverseColumns:
    """Every listed security that has a quote, with its stats, as columns: one row of
    arrays (≈6,000 values each, NULL sent as NaN so numpy takes them whole), decoded far
    faster than 6,000 records."""
    nan = "'NaN'::float8"
    floats = [
        "q.price",
        "q.previous_close",
        "q.volume::float8",
        "q.price * s.shares_outstanding",
        *(f"t.base_{p}" for p in _PERIOD_COLUMNS),
        "t.high_52w",
        "t.low_52w",
        *(f"t.price_base_{p}" for p in _PERIOD_COLUMNS),
    ]
    row = await conn.fetchrow(
        "SELECT array_agg(s.ticker), array_agg(s.name), array_agg(s.sector), "
        + ", ".join(f"array_agg(COALESCE({column}, {nan}))" for column in floats)
        + " FROM securities s JOIN latest_quotes q USING (ticker)"
        " LEFT JOIN security_stats t USING (security_id) WHERE s.status = 'listed'"
    )
    if row is None or row[0] is None:
        return UniverseColumns.empty()
    arrays = [np.array(row[3 + k], dtype=np.float64) for k in range(len(floats))]
    return UniverseColumns(
        ticker=row[0],
        name=row[1],
        sector=row[2],
        price=arrays[0],
        previous_close=arrays[1],
        volume=arrays[2],
        market_cap=arrays[3],
        bases={p: arrays[4 + k] for k, p in enumerate(_PERIOD_COLUMNS)},
        high_52w=arrays[10],
        low_52w=arrays[11],
        price_bases={p: arrays[12 + k] for k, p in enumerate(_PERIOD_COLUMNS)},
    )
