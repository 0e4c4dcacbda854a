"""The feed to NATS and the request/reply subjects, on real NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest

from services.market import events
from services.market.domain import calendar
from services.market.feed import Feed
from services.market.repository import bars as bars_repo
from services.market.service import market as market_service
from shared.messaging import Bus, Delivered, RemoteError

TICK_FIELDS = {"ticker", "price", "previous_close", "change", "change_percent", "volume", "ts"}


async def _ready() -> bool:
    return True


async def test_feed_publishes_ticks_keeps_quotes_and_closes_the_session(
    fresh_market_pool: asyncpg.Pool, bus: Bus
) -> None:
    pool = fresh_market_pool
    now = [datetime.now(UTC)]
    received: list[tuple[str, bytes]] = []

    async def on_raw(msg) -> None:  # type: ignore[no-untyped-def]
        received.append((msg.subject, msg.data))

    await bus.client.subscribe(bus.subject("market.tick.>"), cb=on_raw)
    feed = Feed(
        pool, bus, mode="always", rate=2000, interval=0.02, flush_interval=0.2, clock=lambda: now[0]
    )
    feed.start(_ready)
    try:
        for _ in range(400):  # thin securities tick only when they trade
            await asyncio.sleep(0.05)
            if feed.stats.ticks > 1000:
                break
        session = feed.stats.session
        assert session is not None and feed.stats.ticks > 1000
        await asyncio.sleep(0.3)  # a flush

        # The contract: subject per ticker, exact payload shape, consistent numbers.
        last_volume: dict[str, int] = {}
        for subject, data in received[:2000]:
            tick = orjson.loads(data)
            assert set(tick) == TICK_FIELDS
            assert subject == bus.subject(f"market.tick.{tick['ticker']}")
            assert isinstance(tick["price"], float) and isinstance(tick["ts"], int)
            assert tick["change"] == pytest.approx(tick["price"] - tick["previous_close"], abs=1e-3)
            assert tick["volume"] >= last_volume.get(tick["ticker"], 0)  # cumulative
            last_volume[tick["ticker"]] = tick["volume"]
        quotes = {
            q.ticker: q for q in (await market_service.quotes_reply(pool, list(last_volume))).quotes
        }
        assert len(quotes) == len(last_volume)
        # The pre-encoded snapshot was rebuilt with the rows, in the same transaction.
        snapshot = {
            q["ticker"]: q
            for q in orjson.loads(await market_service.quote_snapshot(pool))["quotes"]
        }
        for ticker, quote in quotes.items():
            assert snapshot[ticker]["price"] == pytest.approx(quote.price)
            assert snapshot[ticker]["volume"] == quote.volume
        async with pool.acquire() as conn:
            # Every security that traded is in the session; one that has not traded yet (a
            # thin one: its price moves only on a trade) still shows yesterday's quote.
            row = await conn.fetchrow("SELECT max(session) FROM latest_quotes")
            assert row[0] == session
            traded = await conn.fetchval(
                "SELECT count(*) FROM latest_quotes WHERE session = $1 AND volume > 0", session
            )
            assert traded == await conn.fetchval(
                "SELECT count(*) FROM latest_quotes WHERE session = $1", session
            )
            highs = await conn.fetchval(
                "SELECT bool_and(day_low <= price AND price <= day_high) FROM latest_quotes"
            )
            assert highs
            outbox_before = await conn.fetchval("SELECT count(*) FROM outbox")

        # Past the close: the session's bars are written and market.eod.completed queued.
        _, closes = calendar.session_bounds(session)
        now[0] = closes + timedelta(seconds=1)
        for _ in range(100):
            await asyncio.sleep(0.05)
            if feed.stats.eod_runs:
                break
        assert feed.stats.eod_runs == 1 and feed.stats.session == calendar.next_session(session)
        await asyncio.sleep(0.5)  # the next session has ticked and flushed
        async with pool.acquire() as conn:
            assert await bars_repo.last_day(conn) == session
            bars = await conn.fetch(
                "SELECT b.open, b.high, b.low, b.close, q.previous_close, q.session"
                " FROM daily_bars b JOIN securities s USING (security_id)"
                " JOIN latest_quotes q USING (ticker) WHERE b.day = $1",
                session,
            )
            assert traded <= len(bars) <= 12  # those that traded in the session
            assert all(b["low"] <= min(b["open"], b["close"]) for b in bars)
            assert all(b["high"] >= max(b["open"], b["close"]) for b in bars)
            # The next session starts from the closes the bars recorded.
            moved = [b for b in bars if b["session"] == feed.stats.session]
            assert moved and all(b["previous_close"] == b["close"] for b in moved)
            events_ = await conn.fetch("SELECT subject, payload FROM outbox ORDER BY id")
            assert len(events_) == outbox_before + 1
            assert events_[-1]["subject"] == "market.eod.completed"
            assert events_[-1]["payload"]["data"]["session"] == session.isoformat()
            assert await conn.fetchval("SELECT max(as_of) FROM security_stats") == session
    finally:
        await feed.stop()


async def test_feed_stays_quiet_outside_the_session_in_schedule_mode(
    fresh_market_pool: asyncpg.Pool, bus: Bus
) -> None:
    async with fresh_market_pool.acquire() as conn:
        last = await bars_repo.last_day(conn)
    assert last is not None
    session = calendar.next_session(last)
    opens, _ = calendar.session_bounds(session)
    feed = Feed(
        fresh_market_pool,
        bus,
        mode="schedule",
        rate=2000,
        interval=0.02,
        flush_interval=0.2,
        clock=lambda: opens - timedelta(hours=1),
    )
    feed.start(_ready)
    try:
        for _ in range(40):
            await asyncio.sleep(0.05)
            if feed.stats.running:
                break
        await asyncio.sleep(0.3)
        assert feed.stats.running and feed.stats.ticks == 0
    finally:
        await feed.stop()


async def test_rpc_quotes_and_history_over_nats(pool: asyncpg.Pool, bus: Bus) -> None:
    async def quotes(request: events.QuotesRequest, _: Delivered) -> events.QuotesReply:
        return await market_service.quotes_reply(pool, request.tickers)

    async def history(request: events.HistoryRequest, _: Delivered) -> events.HistoryReply:
        return await market_service.history_reply(pool, request, budget_bytes=16_000)

    async def index(request: events.IndexRequest, _: Delivered) -> events.IndexReply:
        return await market_service.index_reply(pool, request)

    await bus.serve(events.RPC_QUOTES, events.QuotesRequest, quotes)
    await bus.serve(events.RPC_HISTORY, events.HistoryRequest, history)
    await bus.serve(events.RPC_INDEX, events.IndexRequest, index)

    reply = await bus.request(
        events.RPC_QUOTES,
        events.QuotesRequest(tickers=["ACME", "BRGT", "ZZZZ"]),
        events.QuotesReply,
    )
    assert [q.ticker for q in reply.quotes] == ["ACME", "BRGT"] and reply.missing == ["ZZZZ"]

    snapshot = await market_service.quotes_reply(pool, [])
    assert snapshot.quotes == []
    async with pool.acquire() as conn:
        tickers = [r[0] for r in await conn.fetch("SELECT ticker FROM securities ORDER BY ticker")]
        end = await bars_repo.last_day(conn)
    assert end is not None
    request = events.HistoryRequest(tickers=tickers, start=end - timedelta(days=90), end=end)
    series, cursor, pages = [], None, 0
    while True:
        page = await bus.request(
            events.RPC_HISTORY, request.model_copy(update={"cursor": cursor}), events.HistoryReply
        )
        series.extend(page.series)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages > 1 and [s.ticker for s in series] == tickers
    assert all(len(s.dates) == len(s.closes) > 50 for s in series if s.ticker == "ACME")

    # The index over NATS is the one served over HTTP.
    window = events.IndexRequest(start=end - timedelta(days=90), end=end)
    levels = await bus.request(events.RPC_INDEX, window, events.IndexReply)
    served = (await market_service.index_history(pool, window.start, window.end))["levels"]
    assert len(levels.dates) == len(served) > 50
    assert levels.dates == [row["date"] for row in served]
    assert levels.total_return == [row["total_return"] for row in served]
    assert levels.price_return == [row["price_return"] for row in served]

    with pytest.raises(RemoteError) as raised:
        await bus.request(
            events.RPC_HISTORY,
            events.QuotesRequest(tickers=["ACME"]),
            events.HistoryReply,
        )
    assert raised.value.status_code == 422
