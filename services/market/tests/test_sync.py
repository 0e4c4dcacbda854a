"""The scheduled sync end to end, against a fake Polygon server the test runs on loopback
(its answers in Polygon's documented shapes, as in ``recorded/``): throttling (a 429 with
``Retry-After``, a throttle sent as a 200), sessions missed while no replica ran caught up
in order, a session the provider has not published yet tried again, a split recorded and
announced, ``market.eod.completed`` queued once per session, and two replicas syncing at
once storing each session once. On a database of this module's own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web

from bourse.parts import MARKET
from services.market import schemas
from services.market.domain import calendar
from services.market.importers.providers import ProviderBar, ProviderClient
from services.market.providers.polygon import PolygonSync
from services.market.repository import provider_sync as repo
from services.market.service import imports, stocks
from services.market.service import market as market_service
from services.market.sync import ProviderSync
from services.market.tests.factories import in_request, in_unit, new_security
from shared.db import create_pool
from tests.infra import TestInfra, own_infra

HISTORY = [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4), date(2024, 1, 5)]
MISSED = [date(2024, 1, 8), date(2024, 1, 9), date(2024, 1, 10)]
SPLIT_DAY = date(2024, 1, 9)
# 30 minutes after the close of 2024-01-10 (16:00 New York = 21:00 UTC).
NOW = datetime(2024, 1, 10, 21, 45, tzinfo=UTC)


def close_of(ticker: str, day: date) -> float:
    """The fake market: a price a session, halved for SYNA from its 2-for-1 split on."""
    n = (day - date(2024, 1, 1)).days
    price = (100.0 if ticker == "SYNA" else 50.0) + n
    return price / 2 if ticker == "SYNA" and day >= SPLIT_DAY else price


def bar(ticker: str, day: date) -> ProviderBar:
    c = close_of(ticker, day)
    return ProviderBar(ticker, day, c, c * 1.01, c * 0.99, c, 1000.0)


class FakePolygon:
    """Grouped daily bars, splits and dividends in Polygon's shapes; throttles first."""

    def __init__(self) -> None:
        self.published = set(MISSED[:-1])  # 2024-01-10 is not out yet
        self.calls: list[str] = []
        self.keys: set[str] = set()

    async def grouped(self, request: web.Request) -> web.Response:
        self.calls.append(request.path)
        self.keys.add(request.headers.get("Authorization", ""))
        if self.calls.count(request.path) == 1 and request.path.endswith("2024-01-08"):
            return web.json_response(
                {"status": "ERROR", "request_id": "r", "error": "exceeded the maximum requests"},
                status=429,
                headers={"Retry-After": "0"},
            )
        day = date.fromisoformat(request.match_info["day"])
        results = (
            [
                {
                    "T": t,
                    "o": b.open,
                    "h": b.high,
                    "l": b.low,
                    "c": b.close,
                    "v": b.volume,
                    "t": int(
                        datetime(day.year, day.month, day.day, 5, tzinfo=UTC).timestamp() * 1000
                    ),
                }
                for t in ("SYNA", "SYNB", "NOTUS")
                for b in [bar(t, day)]
            ]
            if day in self.published
            else []
        )
        return web.json_response(
            {
                "adjusted": False,
                "queryCount": len(results),
                "resultsCount": len(results),
                "status": "OK",
                "request_id": "r",
                "results": results,
            }
        )

    async def splits(self, request: web.Request) -> web.Response:
        self.calls.append(request.path)
        if self.calls.count(request.path) == 1:  # Polygon's throttle, sent as a 200
            return web.json_response(
                {
                    "status": "ERROR",
                    "request_id": "r",
                    "error": "You've exceeded the maximum requests per minute, please wait",
                }
            )
        lo = request.query["execution_date.gte"]
        hi = request.query["execution_date.lte"]
        results = (
            [
                {
                    "execution_date": SPLIT_DAY.isoformat(),
                    "id": "E1",
                    "split_from": 1,
                    "split_to": 2,
                    "ticker": "SYNA",
                }
            ]
            if lo <= SPLIT_DAY.isoformat() <= hi
            else []
        )
        return web.json_response({"status": "OK", "request_id": "r", "results": results})

    async def dividends(self, request: web.Request) -> web.Response:
        self.calls.append(request.path)
        return web.json_response({"status": "OK", "request_id": "r", "results": []})


@pytest.fixture(scope="module")
async def sync_infra(infra: TestInfra) -> AsyncIterator[TestInfra]:
    async with own_infra(infra, "msync", [MARKET]) as own:
        yield own


@pytest.fixture
async def fake_polygon() -> AsyncIterator[tuple[FakePolygon, str]]:
    fake = FakePolygon()
    app = web.Application()
    app.router.add_get("/v2/aggs/grouped/locale/us/market/stocks/{day}", fake.grouped)
    app.router.add_get("/v3/reference/splits", fake.splits)
    app.router.add_get("/v3/reference/dividends", fake.dividends)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def test_sessions_are_due_after_the_close_from_the_calendar() -> None:
    delay = timedelta(minutes=30)

    def due(now: datetime, last: date) -> list[date]:
        return calendar_due(now, last, delay)

    # 2024-11-29, the day after Thanksgiving, closes early (13:00 New York = 18:00 UTC).
    assert due(datetime(2024, 11, 29, 18, 31, tzinfo=UTC), date(2024, 11, 27)) == [
        date(2024, 11, 29)  # Thanksgiving (11-28) is no session
    ]
    assert due(datetime(2024, 11, 29, 18, 29, tzinfo=UTC), date(2024, 11, 27)) == []
    # A weekend and a holiday (2024-01-15, MLK day) are skipped; catch-up is bounded.
    assert due(datetime(2024, 1, 17, 22, 0, tzinfo=UTC), date(2024, 1, 11)) == [
        date(2024, 1, 12),
        date(2024, 1, 16),
        date(2024, 1, 17),
    ]


def calendar_due(now: datetime, last: date, delay: timedelta) -> list[date]:
    from services.market.domain.sync_schedule import due_sessions

    found = due_sessions(now, delay=delay, last_synced=last, last_stored=None, catchup=10)
    assert all(calendar.is_session(d) for d in found)
    return found


async def test_missed_sessions_are_caught_up_once_across_two_replicas(
    sync_infra: TestInfra, fake_polygon: tuple[FakePolygon, str]
) -> None:
    fake, base = fake_polygon
    dsn = sync_infra.dsn_for(MARKET)
    pools = [
        await create_pool(dsn, schema=MARKET.schema, application_name=f"replica{i}")
        for i in range(2)
    ]
    http = httpx.AsyncClient()
    try:
        async with pools[0].acquire() as conn:
            await new_security(conn, ticker="SYNA")
            await new_security(conn, ticker="SYNB")
        history = [bar(t, d) for t in ("SYNA", "SYNB") for d in HISTORY]
        await in_unit(pools[0], imports.import_bars, imports.from_provider(history, "test"))

        def replica(pool: Any) -> ProviderSync:
            client = ProviderClient(http, max_attempts=3, backoff=0.01)
            return ProviderSync(
                pool,
                PolygonSync(client, api_key="pk-secret", base_url=base),
                delay=timedelta(minutes=30),
                poll_seconds=60,
                catchup=10,
                secret="pk-secret",
                clock=lambda: NOW,
            )

        first = await asyncio.gather(*(replica(p).run_once() for p in pools))
        fake.published.add(MISSED[-1])  # the provider publishes 2024-01-10
        second = await asyncio.gather(*(replica(p).run_once() for p in pools))

        synced = sorted(d for r in first + second for d in r.synced)
        assert synced == MISSED  # each missed session stored once, by one replica
        assert any(r.error and "2024-01-10" in r.error for r in first)
        assert "Bearer pk-secret" in fake.keys
        # The 429 on 2024-01-08 and the splits' 200 throttle were retried, not errors.
        assert fake.calls.count("/v2/aggs/grouped/locale/us/market/stocks/2024-01-08") >= 2

        async with pools[0].acquire() as conn:
            ledger = await repo.sessions(conn, "polygon")
            eod = await conn.fetch(
                "SELECT payload FROM outbox WHERE subject = 'market.eod.completed'"
            )
            announced = await conn.fetch(
                "SELECT payload FROM outbox WHERE subject = 'market.actions.recorded'"
            )
            split = await conn.fetchrow(
                "SELECT a.value, a.data_source FROM corporate_actions a JOIN securities s"
                " USING (security_id) WHERE s.ticker = 'SYNA' AND a.ex_date = $1",
                SPLIT_DAY,
            )
            status = await market_service.status(conn, configured_provider="polygon")
        assert [s.session for s in ledger] == MISSED
        # NOTUS (in the grouped answer, not a security here) is left out, not rejected.
        assert [(s.bars_inserted, s.bars_rejected, s.splits) for s in ledger] == [
            (2, 0, 0),
            (2, 0, 1),
            (2, 0, 0),
        ]
        sessions = [_payload(r["payload"])["data"]["session"] for r in eod]
        assert sorted(s for s in sessions if s >= "2024-01-08") == [d.isoformat() for d in MISSED]
        assert tuple(split) == (2.0, "provider:polygon")
        actions = [a for r in announced for a in _payload(r["payload"])["data"]["actions"]]
        assert [(a["ticker"], a["ex_date"], a["kind"]) for a in actions] == [
            ("SYNA", "2024-01-09", "split")
        ]
        (polygon,) = status["providers"]
        assert polygon["last_session"] == MISSED[-1] and polygon["last_error"] is None
        assert polygon["sessions_synced"] == 3
        schemas.MarketStatus.model_validate({**status, "feed": None})

        # The split is applied at read time: the adjusted series is continuous, the raw
        # one as traded; the quote is the last session's close.
        series = await in_request(
            pools[0],
            stocks.price_history,
            "SYNA",
            start=HISTORY[0],
            end=MISSED[-1],
            interval="daily",
            adjusted=True,
        )
        raw = await in_request(
            pools[0],
            stocks.price_history,
            "SYNA",
            start=HISTORY[0],
            end=MISSED[-1],
            interval="daily",
            adjusted=False,
        )
        assert raw.close.tolist() == [close_of("SYNA", d) for d in HISTORY + MISSED]
        assert series.close.tolist() == pytest.approx(
            [close_of("SYNA", d) / (2 if d < SPLIT_DAY else 1) for d in HISTORY + MISSED]
        )
        async with pools[0].acquire() as conn:
            price = await conn.fetchval("SELECT price FROM latest_quotes WHERE ticker = 'SYNA'")
        assert float(price) == close_of("SYNA", MISSED[-1])

        # Nothing is due any more: a further round stores nothing and queues no event.
        again = await replica(pools[1]).run_once()
        assert again.led and again.due == [] and again.synced == []
    finally:
        await http.aclose()
        for pool in pools:
            await pool.close()


async def test_a_provider_error_is_recorded_without_the_key(sync_infra: TestInfra) -> None:
    dsn = sync_infra.dsn_for(MARKET)
    pool = await create_pool(dsn, schema=MARKET.schema, application_name="errors")

    def refuse(_: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"status": "ERROR", "error": "Unknown API Key pk-x"})

    try:
        async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
            sync = ProviderSync(
                pool,
                PolygonSync(ProviderClient(http), api_key="pk-x", base_url="http://p"),
                delay=timedelta(minutes=30),
                poll_seconds=60,
                catchup=3,
                secret="pk-x",
                clock=lambda: NOW + timedelta(days=30),
            )
            sync.provider.name = "polygon-test"
            result = await sync.run_once()
        assert result.error is not None and "pk-x" not in result.error
        async with pool.acquire() as conn:
            state = await repo.state(conn, "polygon-test")
        assert state is not None and state.last_error == result.error
        assert "401" in state.last_error and "***" in state.last_error
    finally:
        await pool.close()


def _payload(value: Any) -> Any:
    """An outbox payload (jsonb: a dict with the pool's codec, text without)."""
    return json.loads(value) if isinstance(value, str) else value
