"""The universe load's lifecycle: a load that died half-way starts again, a second load
changes nothing, and the demo seed waits for a load another process is running."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest

from services.market import demo
from services.market.repository import loads
from services.market.service import loading


async def test_an_interrupted_load_is_started_again_and_a_second_is_a_no_op(
    fresh_market_pool: asyncpg.Pool,
) -> None:
    pool = fresh_market_pool
    spec = loading.universe_spec(12, 1, 3)
    async with pool.acquire() as conn:
        # As if a loader died during the bars phase: its row says loading, nobody holds the lock.
        await conn.execute("UPDATE universe_loads SET state = 'loading', phase = 'bars'")
        await conn.execute(
            "DELETE FROM daily_bars WHERE day > (SELECT min(day) + 30 FROM daily_bars)"
        )
    again = await loading.load_universe(pool, spec)
    assert again.loaded and again.securities == 12
    async with pool.acquire() as conn:
        latest = await loads.latest(conn)
        assert latest is not None and latest.state == "complete"
        assert (
            latest.rows_loaded
            == latest.rows_total
            == await conn.fetchval("SELECT count(*) FROM daily_bars")
        )
    noop = await loading.load_universe(pool, spec)
    assert not noop.loaded


async def test_demo_seed_waits_for_a_load_in_progress(
    fresh_market_pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    pool = fresh_market_pool
    async with pool.acquire() as loader, pool.acquire() as seeder:
        # Another process is loading: it holds the lock and its row says so.
        assert await loads.try_lock(loader)
        load_id = await loader.fetchval(
            "UPDATE universe_loads SET state = 'loading', phase = 'bars', rows_loaded = 100"
            " RETURNING id"
        )
        bars_before = await seeder.fetchval("SELECT count(*) FROM daily_bars")
        waiting = asyncio.create_task(demo.seed_demo(seeder))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        await loads.finish(loader, load_id)
        await loads.unlock(loader)
        try:
            await asyncio.wait_for(waiting, 10)
        finally:
            if not waiting.done():
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiting
        assert await seeder.fetchval("SELECT count(*) FROM daily_bars") == bars_before
    printed = capsys.readouterr().out
    assert "loading the simulated universe: bars" in printed
    assert "simulated universe loaded" in printed
