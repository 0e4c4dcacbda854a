"""Portfolio routes, run in process on the real PostgreSQL, Redis and NATS (identity
stands in through the test's signing key). Grouped per route."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.infra import TestInfra
from tests.inprocess import InProcessApp, running_app


@pytest.fixture(scope="module")
async def portfolio(
    infra: TestInfra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessApp]:
    async with running_app("portfolio", infra, tmp_path_factory.mktemp("pf")) as running:
        yield running


# --- POST /portfolio -------------------------------------------------------------------


async def test_create_stores_exact_cash(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    created = await portfolio.client.post(
        "/api/v1/portfolio", json={"name": "Main", "cash": "1000.1234"}, headers=caller
    )
    assert created.status_code == 201, created.text
    assert created.json()["cash"] == "1000.1234"


async def test_a_second_portfolio_of_the_same_name_conflicts(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    first = await portfolio.client.post("/api/v1/portfolio", json={"name": "A"}, headers=caller)
    again = await portfolio.client.post("/api/v1/portfolio", json={"name": "A"}, headers=caller)
    assert (first.status_code, again.status_code) == (201, 409)
    listed = (await portfolio.client.get("/api/v1/portfolio", headers=caller)).json()["items"]
    assert len(listed) == 1


async def test_a_burst_of_creates_beyond_the_pool_all_complete(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    burst = 5 * portfolio.settings.db_pool_max
    async with asyncio.timeout(60):
        answers = await asyncio.gather(
            *(
                portfolio.client.post("/api/v1/portfolio", json={"name": f"p{i}"}, headers=caller)
                for i in range(burst)
            )
        )
    assert [a.status_code for a in answers] == [201] * burst


async def test_negative_cash_is_refused(portfolio: InProcessApp) -> None:
    response = await portfolio.client.post(
        "/api/v1/portfolio", json={"name": "x", "cash": "-1"}, headers=portfolio.token()
    )
    assert response.status_code == 422
    assert response.json()["error_code"] == "VALIDATION_ERROR"


# --- GET /portfolio --------------------------------------------------------------------


async def test_each_caller_sees_only_their_own(portfolio: InProcessApp) -> None:
    alice, bob = portfolio.token(), portfolio.token()
    await portfolio.client.post("/api/v1/portfolio", json={"name": "Alice's"}, headers=alice)
    seen = (await portfolio.client.get("/api/v1/portfolio", headers=bob)).json()["items"]
    assert seen == []
