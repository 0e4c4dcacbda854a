"""``market.rpc.universe`` and ``market.rpc.quotes`` as other contexts receive them: the
universe in pages under the payload budget, every security once; quotes with sectors."""

from __future__ import annotations

import asyncpg

from services.market import events, listings
from services.market.tests.factories import new_security
from shared.messaging import Bus, Delivered
from shared.messaging._wire import encode


async def all_pages(bus: Bus, request: events.UniverseRequest) -> list[events.UniverseReply]:
    pages, cursor = [], None
    while True:
        page = await bus.request(
            events.RPC_UNIVERSE,
            request.model_copy(update={"cursor": cursor}),
            events.UniverseReply,
        )
        pages.append(page)
        if (cursor := page.next_cursor) is None:
            return pages


async def test_the_universe_comes_in_pages_under_the_budget_each_security_once(
    pool: asyncpg.Pool, bus: Bus
) -> None:
    budget = 2_000

    async def universe(request: events.UniverseRequest, _: Delivered) -> events.UniverseReply:
        return await listings.universe_reply(pool, request, budget_bytes=budget)

    async with pool.acquire() as conn:
        delisted, _ = await new_security(conn, sector="Energy")
        await conn.execute("UPDATE securities SET status = 'delisted' WHERE ticker = $1", delisted)
        listed, _ = await new_security(conn, sector="Utilities")
        stored = {
            r["ticker"]: dict(r)
            for r in await conn.fetch(
                "SELECT ticker, name, exchange, sector, industry, status, data_source"
                " FROM securities"
            )
        }
    sub = await bus.serve(events.RPC_UNIVERSE, events.UniverseRequest, universe)
    try:
        pages = await all_pages(bus, events.UniverseRequest())
        everything = await all_pages(bus, events.UniverseRequest(listed_only=False))
    finally:
        await sub.unsubscribe()
    assert len(pages) > 2 and all(len(encode(p)) <= budget for p in pages)
    got = [s for p in pages for s in p.securities]
    assert [s.ticker for s in got] == sorted(
        t for t, r in stored.items() if r["status"] == "listed"
    )
    assert delisted not in {s.ticker for s in got} and listed in {s.ticker for s in got}
    assert all(s.model_dump() == stored[s.ticker] for s in got)
    assert sorted(s.ticker for p in everything for s in p.securities) == sorted(stored)


async def test_a_name_longer_than_the_budget_still_moves_on(pool: asyncpg.Pool) -> None:
    reply = await listings.universe_reply(pool, events.UniverseRequest(), budget_bytes=10)
    assert len(reply.securities) == 1 and reply.next_cursor == reply.securities[0].ticker


async def test_quotes_carry_each_securitys_sector(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT q.ticker, s.sector FROM latest_quotes q JOIN securities s USING (ticker)"
            " ORDER BY q.ticker LIMIT 3"
        )
    wanted = [r["ticker"] for r in rows]
    reply = await listings.quotes_reply(pool, [*(t.lower() for t in wanted), "ZZZZ"])
    assert [(q.ticker, q.sector) for q in reply.quotes] == [tuple(r) for r in rows]
    assert reply.missing == ["ZZZZ"] and all(q.price > 0 for q in reply.quotes)
