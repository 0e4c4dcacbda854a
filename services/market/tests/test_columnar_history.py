"""``market.rpc.closes`` agrees with ``market.rpc.history`` (the per-series answer) on every
adjusted close, pages under the payload budget, and carries volumes and actions."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import numpy as np

from services.market import columnar_history, events
from services.market.domain import adjustment as adj
from services.market.repository import actions as actions_repo
from services.market.repository import bars as bars_repo
from services.market.service import market as market_service
from shared.messaging._wire import encode


async def all_pages(
    pool: asyncpg.Pool, request: events.ClosesRequest, budget: int
) -> list[events.ClosesReply]:
    pages, cursor = [], None
    while True:
        page = await columnar_history.closes_reply(
            pool, request.model_copy(update={"cursor": cursor}), budget_bytes=budget
        )
        pages.append(page)
        if (cursor := page.next_cursor) is None:
            return pages


async def test_the_matrix_holds_the_same_adjusted_closes_as_the_series(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        tickers = [r[0] for r in await conn.fetch("SELECT ticker FROM securities ORDER BY 1")]
        end = await bars_repo.last_day(conn)
    assert end is not None
    start = end - timedelta(days=400)
    request = events.ClosesRequest(tickers=[*tickers, "ZZZZ"], start=start, end=end)
    budget = 60_000
    pages = await all_pages(pool, request, budget)
    assert len(pages) > 2
    # What goes on the wire is what a strict parse of the declared model reads back.
    for page in pages:
        wire = encode(page)
        assert len(wire) <= budget
        assert events.ClosesReply.model_validate_json(wire).tickers == page.tickers
    assert [t for p in pages for t in p.tickers] == tickers
    assert [t for p in pages for t in p.missing] == ["ZZZZ"]

    reference = await market_service.history_reply(
        pool,
        events.HistoryRequest(tickers=tickers, start=start, end=end),
        budget_bytes=10**9,
    )
    series = {s.ticker: s for s in reference.series}
    for page in pages:
        sessions = np.array(page.sessions, dtype="datetime64[D]")
        closes = np.array(page.closes, dtype=np.float64).reshape(len(page.tickers), -1)
        for row, ticker in enumerate(page.tickers):
            held = ~np.isnan(closes[row])
            expected = series[ticker]
            assert sessions[held].tolist() == expected.dates
            np.testing.assert_allclose(closes[row, held], expected.closes, rtol=1e-9)


async def test_volumes_are_split_adjusted_and_actions_in_range_come_along(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        split = await conn.fetchrow(
            "SELECT s.ticker, s.security_id, a.ex_date FROM corporate_actions a"
            " JOIN securities s USING (security_id) WHERE a.kind = 'split'"
            " ORDER BY a.ex_date DESC LIMIT 1"
        )
        assert split is not None, "the simulated universe has splits"
        ticker, sid, ex_date = split
        start, end = ex_date - timedelta(days=30), ex_date + timedelta(days=30)
        bars = await bars_repo.bars_for(conn, [sid], start, end)
        actions = await actions_repo.actions_for(conn, sid)
    reply = await columnar_history.closes_reply(
        pool, events.ClosesRequest(tickers=[ticker], start=start, end=end), budget_bytes=10**6
    )
    (_, volume_f) = adj.factors(bars.day, actions)
    sessions = np.array(reply.sessions, dtype="datetime64[D]")
    volumes = np.array(reply.volumes, dtype=np.float64)
    at = np.searchsorted(sessions, bars.day)
    np.testing.assert_allclose(volumes[at], bars.volume * volume_f)
    assert not np.all(volume_f == 1.0)  # the split really rescales the earlier volumes
    listed = [(a.ex_date, a.kind, a.value) for a in actions if start <= a.ex_date <= end]
    got = list(zip(reply.actions.ex_date, reply.actions.kind, reply.actions.value, strict=True))
    assert got == listed and set(reply.actions.ticker) == {ticker}
