"""Daily bars: storage detection, partitions, binary COPY (bulk and staged upsert), reads.

Rows travel to PostgreSQL as PGCOPY binary built with numpy in one vectorised step
(78 bytes a row, no per-row Python), which is what makes the bulk load run near the rate
of a raw ``COPY``. The bulk path (an empty table) loads without the primary key and builds
it afterwards, which is several times faster than maintaining the index row by row; the
staged path (imports into a table with data) copies into a temporary table and merges with
``INSERT ... ON CONFLICT DO UPDATE ... WHERE IS DISTINCT FROM``, so re-importing a file
changes nothing and the summary says what was inserted, updated or unchanged.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

import asyncpg
import numpy as np
import numpy.typing as npt

from services.market.domain import Security
from services.market.domain.adjustment import Action

Storage = Literal["timescaledb", "native"]

_EPOCH_2000 = np.datetime64("2000-01-01", "D")
_DAYS_1970_TO_2000 = 10_957
_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_TRAILER = struct.pack("!h", -1)
BAR_COLUMNS = ("security_id", "day", "open", "high", "low", "close", "volume")
_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("l_id", ">i4"),
        ("security_id", ">i4"),
        ("l_day", ">i4"),
        ("day", ">i4"),
        ("l_open", ">i4"),
        ("open", ">f8"),
        ("l_high", ">i4"),
        ("high", ">f8"),
        ("l_low", ">i4"),
        ("low", ">f8"),
        ("l_close", ">i4"),
        ("close", ">f8"),
        ("l_volume", ">i4"),
        ("volume", ">i8"),
    ]
)
_LENGTHS = {
    "l_id": 4,
    "l_day": 4,
    "l_open": 8,
    "l_high": 8,
    "l_low": 8,
    "l_close": 8,
    "l_volume": 8,
}


@dataclass(frozen=True)
class BarArrays:
    """Bars as columns (numpy), ``day`` as ``datetime64[D]``."""

    security_id: npt.NDArray[np.int32]
    day: npt.NDArray[np.datetime64]
    open: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    low: npt.NDArray[np.float64]
    close: npt.NDArray[np.float64]
    volume: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.security_id)

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> BarArrays:
        return BarArrays(
            self.security_id[index],
            self.day[index],
            self.open[index],
            self.high[index],
            self.low[index],
            self.close[index],
            self.volume[index],
        )


def _encode_rows(bars: BarArrays) -> bytes:
    rows = np.empty(len(bars), dtype=_ROW)
    rows["fields"] = len(BAR_COLUMNS)
    for name, length in _LENGTHS.items():
        rows[name] = length
    rows["security_id"] = bars.security_id
    rows["day"] = (bars.day.astype("datetime64[D]") - _EPOCH_2000).astype(np.int32)
    rows["open"] = bars.open
    rows["high"] = bars.high
    rows["low"] = bars.low
    rows["close"] = bars.close
    rows["volume"] = bars.volume
    return rows.tobytes()


def encode_binary(bars: BarArrays, *, header: bool = True, trailer: bool = True) -> bytes:
    """``bars`` as PGCOPY binary for the columns :data:`BAR_COLUMNS`."""
    return (_HEADER if header else b"") + _encode_rows(bars) + (_TRAILER if trailer else b"")


@dataclass(frozen=True)
class EncodedPartitions:
    """Bars encoded once, as one PGCOPY body per yearly partition (views, no copies)."""

    body: bytes
    parts: list[tuple[int, int, int]]  # (year, first row, end row)
    rows: int

    def payload(self, first: int, end: int) -> list[memoryview]:
        view = memoryview(self.body)
        return [
            memoryview(_HEADER),
            view[first * _ROW.itemsize : end * _ROW.itemsize],
            memoryview(_TRAILER),
        ]


def encode_by_year(bars: BarArrays) -> EncodedPartitions:
    """Encode ``bars`` once, grouped by year (stable: the order within a year is kept, so
    rows sorted by (security, day) stay sorted for the index build). CPU only: callers
    may run it in a thread while another chunk is being copied."""
    years = bars.day.astype("datetime64[Y]").astype(np.int64) + 1970
    if len(years) and not (years[1:] >= years[:-1]).all():
        order = np.argsort(years, kind="stable")
        bars = bars.take(order)
        years = years[order]
    boundaries = (
        np.flatnonzero(np.r_[True, years[1:] != years[:-1]]) if len(years) else np.empty(0, np.intp)
    )
    ends = [*list(boundaries[1:]), len(years)]
    parts = [(int(years[b]), int(b), int(e)) for b, e in zip(boundaries, ends, strict=True)]
    return EncodedPartitions(_encode_rows(bars), parts, len(bars))


def decode_binary(data: bytes) -> BarArrays:
    """The inverse of :func:`encode_binary` (for ``COPY ... TO STDOUT (FORMAT binary)``
    of exactly :data:`BAR_COLUMNS`, none NULL)."""
    body = data[len(_HEADER) : len(data) - len(_TRAILER)]
    rows = np.frombuffer(body, dtype=_ROW)
    return BarArrays(
        rows["security_id"].astype(np.int32),
        (rows["day"].astype(np.int64) + _DAYS_1970_TO_2000).astype("datetime64[D]"),
        rows["open"].astype(np.float64),
        rows["high"].astype(np.float64),
        rows["low"].astype(np.float64),
        rows["close"].astype(np.float64),
        rows["volume"].astype(np.int64),
    )


async def storage(conn: asyncpg.Connection) -> Storage:
    """Which storage path the schema was built with."""
    partitioned = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid"
        " WHERE c.relname = 'daily_bars' AND c.relnamespace = current_schema()::regnamespace)"
    )
    return "native" if partitioned else "timescaledb"


def partition_name(year: int) -> str:
    return f"daily_bars_{year}"


async def ensure_partitions(conn: asyncpg.Connection, years: Iterable[int]) -> None:
    """Create the yearly partitions of ``daily_bars`` that are missing (native path only)."""
    if await storage(conn) != "native":
        return
    existing = {
        row["relname"]
        for row in await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'daily_bars'::regclass"
        )
    }
    for year in sorted(set(years)):
        name = partition_name(year)
        if name not in existing:
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF daily_bars"
                f" FOR VALUES FROM ('{year}-01-01') TO ('{year + 1}-01-01')"
            )


def years_of(days: npt.NDArray[np.datetime64]) -> set[int]:
    if len(days) == 0:
        return set()
    years = days.astype("datetime64[Y]").astype(np.int64) + 1970
    return {int(y) for y in np.unique(years)}


async def is_empty(conn: asyncpg.Connection) -> bool:
    return not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM daily_bars)")


async def drop_primary_key(conn: asyncpg.Connection) -> None:
    await conn.execute("ALTER TABLE daily_bars DROP CONSTRAINT IF EXISTS daily_bars_pkey")


async def add_primary_key(conn: asyncpg.Connection, *, maintenance_work_mem: str = "256MB") -> None:
    """Build the primary key (after a bulk load; each partition's index in turn)."""
    await conn.execute(f"SET maintenance_work_mem = '{maintenance_work_mem}'")
    await conn.execute(
        "ALTER TABLE daily_bars ADD CONSTRAINT daily_bars_pkey PRIMARY KEY (security_id, day)"
    )
    await conn.execute("RESET maintenance_work_mem")


async def has_primary_key(conn: asyncpg.Connection) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'daily_bars_pkey'"
        " AND conrelid = 'daily_bars'::regclass)"
    )
    return found


async def copy_bulk(conn: asyncpg.Connection, bars: BarArrays) -> int:
    """COPY ``bars`` straight into ``daily_bars`` (no merge: the rows must be new).

    On the native path each year's rows go straight to their partition (no tuple routing).
    """
    if len(bars) == 0:
        return 0
    return await copy_encoded_partitions(conn, encode_by_year(bars))


async def copy_encoded_partitions(conn: asyncpg.Connection, encoded: EncodedPartitions) -> int:
    """COPY rows encoded by :func:`encode_by_year` (partitions must exist)."""
    native = await storage(conn) == "native"
    if not native:
        await _copy_views(conn, "daily_bars", encoded.payload(0, encoded.rows))
        return encoded.rows
    for year, first, end in encoded.parts:
        await _copy_views(conn, partition_name(year), encoded.payload(first, end))
    return encoded.rows


async def copy_encoded(conn: asyncpg.Connection, table: str, data: bytes) -> None:
    """COPY already encoded PGCOPY binary (header and trailer included) into ``table``."""
    await _copy(conn, table, data)


async def _copy(conn: asyncpg.Connection, table: str, data: bytes) -> None:
    await _copy_views(conn, table, [memoryview(data)])


async def _copy_views(conn: asyncpg.Connection, table: str, parts: list[memoryview]) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        step = 4 << 20
        for part in parts:
            for offset in range(0, len(part), step):
                yield bytes(part[offset : offset + step])

    await conn.copy_to_table(table, source=chunks(), columns=BAR_COLUMNS, format="binary")


@dataclass(frozen=True)
class MergeCounts:
    inserted: int
    updated: int
    unchanged: int


async def merge(conn: asyncpg.Connection, bars: BarArrays) -> MergeCounts:
    """Insert new bars, update changed ones, leave identical ones untouched.

    Must run inside a transaction (the staging table is dropped at commit).
    """
    if len(bars) == 0:
        return MergeCounts(0, 0, 0)
    await ensure_partitions(conn, years_of(bars.day))
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS bars_in (security_id integer, day date,"
        " open double precision, high double precision, low double precision,"
        " close double precision, volume bigint) ON COMMIT DROP"
    )
    await conn.execute("TRUNCATE bars_in")
    await _copy(conn, "bars_in", encode_binary(bars))
    # Partitioned tables cannot return xmax (inserted vs updated), so count the keys that
    # exist first; the staging rows are unique (validation drops duplicate days).
    existing: int = await conn.fetchval(
        "SELECT count(*) FROM bars_in i JOIN daily_bars b USING (security_id, day)"
    )
    status: str = await conn.execute(
        "INSERT INTO daily_bars (security_id, day, open, high, low, close, volume)"
        " SELECT security_id, day, open, high, low, close, volume FROM bars_in"
        " ON CONFLICT (security_id, day) DO UPDATE SET open = EXCLUDED.open,"
        " high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,"
        " volume = EXCLUDED.volume"
        " WHERE (daily_bars.open, daily_bars.high, daily_bars.low, daily_bars.close,"
        " daily_bars.volume) IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low,"
        " EXCLUDED.close, EXCLUDED.volume)"
    )
    written = int(status.split()[-1])
    inserted = len(bars) - existing
    updated = written - inserted
    return MergeCounts(inserted, updated, len(bars) - inserted - updated)


async def refresh_periods(conn: asyncpg.Connection, first: date, last: date) -> None:
    """After bars from ``first`` to ``last`` were merged (and committed): on TimescaleDB,
    re-materialise the weekly and monthly buckets holding them. The continuous aggregates
    include bars not yet materialised, but a change to a period already materialised would
    otherwise show only after the next refresh by the policy (up to an hour). Only the
    invalidated buckets are recomputed. Must run outside a transaction; nothing to do on
    the native path (plain views)."""
    if await storage(conn) != "timescaledb":
        return
    schema = await conn.fetchval(
        "SELECT quote_ident(extnamespace::regnamespace::text) FROM pg_extension"
        " WHERE extname = 'timescaledb'"
    )
    week_start = first - timedelta(days=first.weekday())
    week_end = last - timedelta(days=last.weekday()) + timedelta(days=7)
    month_start = first.replace(day=1)
    month_end = (last.replace(day=1) + timedelta(days=32)).replace(day=1)
    for view, start, end in (
        ("weekly_bars", week_start, week_end),
        ("monthly_bars", month_start, month_end),
    ):
        # CALL takes no bind parameters for these "any" arguments: ISO dates only.
        await conn.execute(
            f"CALL {schema}.refresh_continuous_aggregate('{view}',"
            f" DATE '{start.isoformat()}', DATE '{end.isoformat()}')"
        )


async def analyze(conn: asyncpg.Connection) -> None:
    await conn.execute("ANALYZE daily_bars")


async def analyze_small_tables(conn: asyncpg.Connection) -> None:
    """Planner statistics for the per-security tables after a bulk change (without them
    the planner expects a few rows and joins 6,000 with nested loops)."""
    await conn.execute(
        "ANALYZE securities, latest_quotes, security_stats, corporate_actions, market_index"
    )


async def daily_history(
    conn: asyncpg.Connection, security_id: int, start: date, end: date
) -> BarArrays:
    """One security's daily bars from ``start`` to ``end`` (inclusive), oldest first."""
    bars, _ = await daily_history_and_actions(conn, security_id, start, end, actions=False)
    return bars


async def daily_history_and_actions(
    conn: asyncpg.Connection, security_id: int, start: date, end: date, *, actions: bool = True
) -> tuple[BarArrays, list[Action]]:
    """One security's daily bars (oldest first) and, with ``actions``, all its corporate
    actions, in one round trip: one row of arrays (a primary-key range scan), which for a
    few hundred bars beats both row-by-row decoding and a COPY."""
    action_columns = (
        ", (SELECT array_agg(ex_date ORDER BY ex_date) FROM corporate_actions a"
        "   WHERE a.security_id = $1),"
        " (SELECT array_agg(kind ORDER BY ex_date) FROM corporate_actions a"
        "   WHERE a.security_id = $1),"
        " (SELECT array_agg(value ORDER BY ex_date) FROM corporate_actions a"
        "   WHERE a.security_id = $1),"
        " (SELECT array_agg(price_factor ORDER BY ex_date) FROM corporate_actions a"
        "   WHERE a.security_id = $1)"
        if actions
        else ""
    )
    row = await conn.fetchrow(
        "SELECT array_agg(day), array_agg(open), array_agg(high), array_agg(low),"
        f" array_agg(close), array_agg(volume){action_columns} FROM (SELECT * FROM daily_bars"
        " WHERE security_id = $1 AND day BETWEEN $2 AND $3 ORDER BY day) b",
        security_id,
        start,
        end,
    )
    assert row is not None
    found: list[Action] = []
    if actions and row[6] is not None:
        found = [Action(*fields) for fields in zip(row[6], row[7], row[8], row[9], strict=True)]
    n = len(row[0]) if row[0] is not None else 0
    if n == 0:
        empty = np.empty(0)
        no_bars = BarArrays(
            np.empty(0, dtype=np.int32),
            np.empty(0, dtype="datetime64[D]"),
            empty,
            empty,
            empty,
            empty,
            np.empty(0, dtype=np.int64),
        )
        return no_bars, found
    bars = BarArrays(
        np.full(n, security_id, dtype=np.int32),
        np.array(row[0], dtype="datetime64[D]"),
        np.array(row[1], dtype=np.float64),
        np.array(row[2], dtype=np.float64),
        np.array(row[3], dtype=np.float64),
        np.array(row[4], dtype=np.float64),
        np.array(row[5], dtype=np.int64),
    )
    return bars, found


async def history_by_ticker(
    conn: asyncpg.Connection, ticker: str, start: date, end: date, *, actions: bool
) -> tuple[Security, BarArrays, list[Action]] | None:
    """The security ``ticker``, its daily bars from ``start`` to ``end`` and (with
    ``actions``) its corporate actions, in one round trip; None if there is no such
    security."""
    row = await conn.fetchrow(
        "SELECT s.ticker, s.name, s.exchange, s.sector, s.industry, s.currency, s.status,"
        " s.shares_outstanding, s.data_source, s.security_id, s.listed_on, s.delisted_on,"
        " b.d, b.o, b.h, b.l, b.c, b.v, a.ex, a.kind, a.value, a.factor"
        " FROM securities s"
        " LEFT JOIN LATERAL (SELECT array_agg(day) d, array_agg(open) o, array_agg(high) h,"
        "   array_agg(low) l, array_agg(close) c, array_agg(volume) v FROM ("
        "   SELECT * FROM daily_bars WHERE security_id = s.security_id"
        "   AND day BETWEEN $2 AND $3 ORDER BY day) x) b ON TRUE"
        " LEFT JOIN LATERAL (SELECT array_agg(ex_date ORDER BY ex_date) ex,"
        "   array_agg(kind ORDER BY ex_date) kind, array_agg(value ORDER BY ex_date) value,"
        "   array_agg(price_factor ORDER BY ex_date) factor FROM corporate_actions c"
        "   WHERE c.security_id = s.security_id AND $4) a ON TRUE"
        " WHERE s.ticker = $1",
        ticker,
        start,
        end,
        actions,
    )
    if row is None:
        return None
    security = Security(*(row[k] for k in range(12)))
    found = (
        [Action(*f) for f in zip(row["ex"], row["kind"], row["value"], row["factor"], strict=True)]
        if row["ex"] is not None
        else []
    )
    return (
        security,
        _bar_arrays(
            security.security_id or 0, row["d"], row["o"], row["h"], row["l"], row["c"], row["v"]
        ),
        found,
    )


def _bar_arrays(
    security_id: int,
    days: list[date] | None,
    open_: list[float] | None,
    high: list[float] | None,
    low: list[float] | None,
    close: list[float] | None,
    volume: list[int] | None,
) -> BarArrays:
    n = len(days) if days is not None else 0
    if n == 0:
        empty = np.empty(0)
        return BarArrays(
            np.empty(0, dtype=np.int32),
            np.empty(0, dtype="datetime64[D]"),
            empty,
            empty,
            empty,
            empty,
            np.empty(0, dtype=np.int64),
        )
    return BarArrays(
        np.full(n, security_id, dtype=np.int32),
        np.array(days, dtype="datetime64[D]"),
        np.array(open_, dtype=np.float64),
        np.array(high, dtype=np.float64),
        np.array(low, dtype=np.float64),
        np.array(close, dtype=np.float64),
        np.array(volume, dtype=np.int64),
    )


async def period_history(
    conn: asyncpg.Connection,
    security_id: int,
    start: date,
    end: date,
    interval: Literal["weekly", "monthly"],
) -> list[tuple[date, float, float, float, float, int, date]]:
    """Raw weekly or monthly bars (continuous aggregates on TimescaleDB, views otherwise):
    (period start, open, high, low, close, volume, last day)."""
    view = "weekly_bars" if interval == "weekly" else "monthly_bars"
    rows = await conn.fetch(
        f"SELECT period::date AS period, open, high, low, close, volume, last_day FROM {view}"
        " WHERE security_id = $1 AND period::date BETWEEN $2 AND $3 ORDER BY period",
        security_id,
        start,
        end,
    )
    return [
        (r["period"], r["open"], r["high"], r["low"], r["close"], r["volume"], r["last_day"])
        for r in rows
    ]


async def bars_between(conn: asyncpg.Connection, start: date, end: date) -> BarArrays:
    """Every security's bars from ``start`` to ``end``, ordered by (security, day)."""
    data = await _copy_out(
        conn,
        "SELECT security_id, day, open, high, low, close, volume FROM daily_bars"
        f" WHERE day BETWEEN '{start.isoformat()}' AND '{end.isoformat()}'"
        " ORDER BY security_id, day",
    )
    return decode_binary(data)


async def bars_for(
    conn: asyncpg.Connection, security_ids: list[int], start: date, end: date
) -> BarArrays:
    """Bars of ``security_ids`` from ``start`` to ``end``, ordered by (security, day)."""
    ids = ",".join(str(int(i)) for i in security_ids) or "NULL"
    data = await _copy_out(
        conn,
        "SELECT security_id, day, open, high, low, close, volume FROM daily_bars"
        f" WHERE security_id IN ({ids})"
        f" AND day BETWEEN '{start.isoformat()}' AND '{end.isoformat()}'"
        " ORDER BY security_id, day",
    )
    return decode_binary(data)


async def _copy_out(conn: asyncpg.Connection, query: str) -> bytes:
    # COPY takes no bind parameters: callers interpolate only ints and ISO dates.
    parts: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        parts.append(chunk)

    await conn.copy_from_query(query, output=sink, format="binary")
    return b"".join(parts)


async def first_day(conn: asyncpg.Connection) -> date | None:
    day: date | None = await conn.fetchval("SELECT min(day) FROM daily_bars")
    return day


async def last_day(conn: asyncpg.Connection) -> date | None:
    """The last day with a bar. Scans the bars (the primary key leads with the security):
    hot paths use ``stats.latest_index_day`` instead."""
    day: date | None = await conn.fetchval("SELECT max(day) FROM daily_bars")
    return day


async def last_closes(conn: asyncpg.Connection, day: date) -> list[tuple[int, float, int]]:
    """(security id, close, volume) of every bar on ``day``."""
    rows = await conn.fetch("SELECT security_id, close, volume FROM daily_bars WHERE day = $1", day)
    return [(r["security_id"], r["close"], r["volume"]) for r in rows]


async def count(conn: asyncpg.Connection) -> int:
    n: int = await conn.fetchval("SELECT count(*) FROM daily_bars")
    return n
