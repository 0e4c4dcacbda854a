"""The bars store on real PostgreSQL: binary COPY, partitions, idempotent merge, the
weekly/monthly query surface, and the load that filled the test database."""

from __future__ import annotations

from datetime import date
from typing import Literal

import asyncpg
import numpy as np
import pytest

from services.market.domain import calendar
from services.market.domain.bars import resample
from services.market.repository import bars as bars_repo
from services.market.repository import loads, quotes
from services.market.tests.conftest import UNIVERSE_SIZE
from services.market.tests.factories import new_security

Period = Literal["weekly", "monthly"]


def _bars(security_id: int, days: list[str], close: list[float]) -> bars_repo.BarArrays:
    c = np.array(close)
    return bars_repo.BarArrays(
        np.full(len(days), security_id, dtype=np.int32),
        np.array(days, dtype="datetime64[D]"),
        c - 0.5,
        c + 1.0,
        c - 1.0,
        c,
        np.full(len(days), 1000, dtype=np.int64),
    )


def test_binary_encoding_round_trips() -> None:
    bars = _bars(7, ["1999-12-31", "2024-02-29"], [10.25, 1e6 + 0.01])
    back = bars_repo.decode_binary(bars_repo.encode_binary(bars))
    for name in ("security_id", "day", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(back, name), getattr(bars, name))


async def test_the_universe_load_completed_with_its_derived_data(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        load = await loads.latest(conn)
        assert load is not None and load.state == "complete"
        # Other tests add securities of their own ("test" data source): count the simulated.
        simulated = "JOIN securities s USING (security_id) WHERE s.data_source = 'simulated'"
        bars = await conn.fetchval(f"SELECT count(*) FROM daily_bars {simulated}")
        assert load.rows_loaded == load.rows_total == bars
        assert await bars_repo.has_primary_key(conn)
        assert await bars_repo.storage(conn) == (
            "timescaledb" if await _timescaledb_installed(conn) else "native"
        )
        assert (
            await conn.fetchval("SELECT count(*) FROM securities WHERE data_source = 'simulated'")
            == UNIVERSE_SIZE
        )
        stats = await conn.fetchval(f"SELECT count(*) FROM security_stats {simulated}")
        listed = await conn.fetchval(
            "SELECT count(*) FROM securities WHERE status = 'listed' AND data_source = 'simulated'"
        )
        assert stats == listed
        quotes_ = await conn.fetchval(
            "SELECT count(*) FROM latest_quotes JOIN securities USING (ticker)"
            " WHERE data_source = 'simulated'"
        )
        assert quotes_ == UNIVERSE_SIZE
        # The index has a level for every session of the history but the first.
        first, last, n = await conn.fetchrow(
            "SELECT min(day), max(day), count(*) FROM market_index"
        )
        assert n == len(calendar.sessions(first, last))


async def test_merge_inserts_updates_and_leaves_identical_rows_alone(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        _, sid = await new_security(conn)
        bars = _bars(sid, ["2024-01-02", "2024-01-03"], [10.0, 11.0])
        async with conn.transaction():
            first = await bars_repo.merge(conn, bars)
        async with conn.transaction():
            again = await bars_repo.merge(conn, bars)
        changed = _bars(sid, ["2024-01-03", "2024-01-04"], [11.5, 12.0])
        async with conn.transaction():
            third = await bars_repo.merge(conn, changed)
        xmin_before = await conn.fetchval(
            "SELECT xmin::text FROM daily_bars WHERE security_id = $1 AND day = '2024-01-02'", sid
        )
        async with conn.transaction():
            await bars_repo.merge(conn, bars.take(np.array([0])))
        xmin_after = await conn.fetchval(
            "SELECT xmin::text FROM daily_bars WHERE security_id = $1 AND day = '2024-01-02'", sid
        )
        stored = await bars_repo.daily_history(conn, sid, date(2024, 1, 1), date(2024, 1, 31))
    assert (first.inserted, first.updated, first.unchanged) == (2, 0, 0)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    assert (third.inserted, third.updated, third.unchanged) == (1, 1, 0)
    assert xmin_before == xmin_after  # an identical row is not even rewritten
    assert stored.close.tolist() == [10.0, 11.5, 12.0]


async def test_partitions_are_created_for_new_years(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        if await bars_repo.storage(conn) != "native":
            pytest.skip("TimescaleDB creates its chunks itself")
        _, sid = await new_security(conn)
        async with conn.transaction():
            await bars_repo.merge(conn, _bars(sid, ["1995-03-01"], [5.0]))
        part = await conn.fetchval(
            "SELECT tableoid::regclass::text FROM daily_bars WHERE security_id = $1", sid
        )
    assert part == "daily_bars_1995"


async def test_weekly_and_monthly_views_agree_with_the_domain_resampler(pool: asyncpg.Pool) -> None:
    """The query surface both storage paths share (views here, continuous aggregates on
    TimescaleDB) gives the same bars as resampling the daily bars in Python."""
    async with pool.acquire() as conn:
        sid = await conn.fetchval("SELECT security_id FROM securities WHERE ticker = 'ACME'")
        end = await bars_repo.last_day(conn)
        assert end is not None
        periods: list[tuple[Period, date]] = [
            ("weekly", date(2025, 1, 6)),
            ("monthly", date(2025, 1, 1)),
        ]
        for interval, start in periods:
            daily = await bars_repo.daily_history(conn, sid, start, end)
            rows = await bars_repo.period_history(conn, sid, start, end, interval)
            expected = resample(
                daily.day, daily.open, daily.high, daily.low, daily.close, daily.volume, interval
            )
            assert [r[0] for r in rows] == [d.item() for d in expected.period]
            np.testing.assert_allclose([r[1] for r in rows], expected.open)
            np.testing.assert_allclose([r[2] for r in rows], expected.high)
            np.testing.assert_allclose([r[3] for r in rows], expected.low)
            np.testing.assert_allclose([r[4] for r in rows], expected.close)
            np.testing.assert_allclose([r[5] for r in rows], expected.volume)
            assert [r[6] for r in rows] == [d.item() for d in expected.last_day]


async def test_the_database_rejects_inconsistent_bars(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        _, sid = await new_security(conn)
        bad = _bars(sid, ["2024-01-02"], [10.0])
        bad = bars_repo.BarArrays(
            bad.security_id, bad.day, bad.open, bad.low, bad.high, bad.close, bad.volume
        )
        with pytest.raises(asyncpg.CheckViolationError):
            async with conn.transaction():
                await bars_repo.merge(conn, bad)


async def _timescaledb_installed(conn: asyncpg.Connection) -> bool:
    installed: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
    )
    return installed


async def test_timescaledb_path_when_the_extension_is_installed(pool: asyncpg.Pool) -> None:
    """Runs only on a database where an administrator created the extension (CI has none:
    see docs/market.md, "How the TimescaleDB path was checked"). Compresses a chunk, merges
    into it, and checks that the continuous aggregates, once materialised, follow the merge."""
    async with pool.acquire() as conn:
        if not await _timescaledb_installed(conn):
            pytest.skip("TimescaleDB is not installed in this PostgreSQL (native path tested)")
        assert await bars_repo.storage(conn) == "timescaledb"
        ts = await conn.fetchval(
            "SELECT quote_ident(extnamespace::regnamespace::text) FROM pg_extension"
            " WHERE extname = 'timescaledb'"
        )
        _, sid = await new_security(conn)
        days = [str(d) for d in calendar.sessions(date(2001, 1, 2), date(2001, 3, 30))]
        closes = [10.0 + i / 10 for i in range(len(days))]
        async with conn.transaction():
            await bars_repo.merge(conn, _bars(sid, days, closes))
        chunk = await conn.fetchval(
            "SELECT tableoid::regclass::text FROM daily_bars WHERE security_id = $1 LIMIT 1", sid
        )
        await conn.execute(f"SELECT {ts}.compress_chunk('{chunk}', if_not_compressed => true)")
        for view in ("weekly_bars", "monthly_bars"):
            await conn.execute(
                f"CALL {ts}.refresh_continuous_aggregate('{view}', DATE '2000-12-01',"
                " DATE '2001-05-01')"
            )
        changed = _bars(sid, days[10:15], [c * 2 for c in closes[10:15]])
        async with conn.transaction():
            counts = await bars_repo.merge(conn, changed)
        assert (counts.inserted, counts.updated) == (0, 5)
        await bars_repo.refresh_periods(conn, date(2001, 1, 17), date(2001, 1, 24))
        daily = await bars_repo.daily_history(conn, sid, date(2001, 1, 1), date(2001, 3, 31))
        assert daily.close.tolist() == closes[:10] + [c * 2 for c in closes[10:15]] + closes[15:]
        periods: list[tuple[Period, date]] = [
            ("weekly", date(2001, 1, 1)),
            ("monthly", date(2001, 1, 1)),
        ]
        for interval, start in periods:
            rows = await bars_repo.period_history(conn, sid, start, date(2001, 3, 31), interval)
            expected = resample(
                daily.day, daily.open, daily.high, daily.low, daily.close, daily.volume, interval
            )
            assert [r[0] for r in rows] == [d.item() for d in expected.period]
            np.testing.assert_allclose([r[4] for r in rows], expected.close)
            np.testing.assert_allclose([r[2] for r in rows], expected.high)


async def test_latest_quotes_read_without_touching_bars(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        plan = await conn.fetchval(
            "EXPLAIN (FORMAT JSON) SELECT * FROM latest_quotes ORDER BY ticker"
        )
        rows = await quotes.all_quotes(conn)
    assert "daily_bars" not in str(plan)
    assert len(rows) >= UNIVERSE_SIZE and all(p > 0 for p in rows.price)
    assert len(set(rows.ticker)) == len(rows) and all(t > 0 for t in rows.ts)
