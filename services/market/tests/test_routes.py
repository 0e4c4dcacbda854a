"""Market routes run in process on the real PostgreSQL, Redis and NATS (identity stands in
through the test's signing key), on a database of this module's own (imports move the
market's derived data, which other tests read): each test makes its own securities.
Grouped per route."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bourse.parts import MARKET
from services.market.tests.factories import new_security
from shared.db import (
    drop_database,
    ensure_database,
    ensure_service_schema,
    open_connection,
    service_dsn,
)
from tests.infra import TestInfra
from tests.inprocess import InProcessApp, running_app

CSV = (
    "Date,Open,High,Low,Close,Volume\n2024-01-02,10,11,9,10.5,100\n2024-01-03,10.5,11,10,10.8,120\n"
)


@pytest.fixture(scope="module")
async def database(infra: TestInfra) -> AsyncIterator[str]:
    name = f"{infra.database}_mroutes"
    await ensure_database(infra.admin_server_url, name)
    await ensure_service_schema(
        infra.admin_server_url, database=name, role=MARKET.db_role, schema=MARKET.schema
    )
    try:
        yield name
    finally:
        await drop_database(infra.admin_server_url, name)


@pytest.fixture(scope="module")
async def market(
    infra: TestInfra, database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessApp]:
    async with running_app(
        "market",
        infra,
        tmp_path_factory.mktemp("mk"),
        database=database,
        universe_autoload=False,
        feed_mode="off",
    ) as app:
        yield app


async def new_tickers(infra: TestInfra, database: str, count: int) -> list[str]:
    conn = await open_connection(
        service_dsn(infra.admin_server_url, database=database, role=MARKET.db_role)
    )
    try:
        return [(await new_security(conn))[0] for _ in range(count)]
    finally:
        await conn.close()


# --- POST /market/imports --------------------------------------------------------------


async def test_an_import_reports_and_a_second_changes_nothing(
    market: InProcessApp, infra: TestInfra, database: str
) -> None:
    (ticker,) = await new_tickers(infra, database, 1)
    headers = {**market.token("admin"), "Content-Type": "text/csv"}
    url = "/api/v1/market/imports"
    first = await market.client.post(url, params={"ticker": ticker}, content=CSV, headers=headers)
    again = await market.client.post(url, params={"ticker": ticker}, content=CSV, headers=headers)
    assert first.status_code == 200, first.text
    assert (first.json()["inserted"], again.json()["inserted"], again.json()["unchanged"]) == (
        2,
        0,
        2,
    )
    prices = await market.client.get(
        f"/api/v1/stocks/{ticker}/prices",
        params={"start": "2024-01-01", "end": "2024-01-31"},
        headers=market.token(),
    )
    assert [b["close"] for b in prices.json()["bars"]] == [10.5, 10.8]


async def test_a_burst_of_imports_beyond_the_pool_all_complete(
    market: InProcessApp, infra: TestInfra, database: str
) -> None:
    burst = 5 * market.settings.db_pool_max
    tickers = await new_tickers(infra, database, burst)
    headers = {**market.token("admin"), "Content-Type": "text/csv"}
    async with asyncio.timeout(180):
        answers = await asyncio.gather(
            *(
                market.client.post(
                    "/api/v1/market/imports", params={"ticker": t}, content=CSV, headers=headers
                )
                for t in tickers
            )
        )
    assert [a.status_code for a in answers] == [200] * burst, {
        a.status_code: a.text for a in answers if a.status_code != 200
    }
    assert {a.json()["inserted"] for a in answers} == {2}


async def test_imports_need_the_admin_role(market: InProcessApp) -> None:
    answer = await market.client.post(
        "/api/v1/market/imports",
        content=CSV,
        headers={**market.token("analyst"), "Content-Type": "text/csv"},
    )
    assert answer.status_code == 403


# --- GET /stocks/{ticker} --------------------------------------------------------------


async def test_an_unknown_ticker_is_not_found(market: InProcessApp) -> None:
    answer = await market.client.get("/api/v1/stocks/ZZZZY", headers=market.token())
    assert answer.status_code == 404
    assert answer.json()["error_code"] == "STOCK_NOT_FOUND"
