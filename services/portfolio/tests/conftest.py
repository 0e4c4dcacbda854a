"""Fixtures of the portfolio service's tests: the service in process on the session's
real PostgreSQL, Redis and NATS, and market's side of ``market.rpc.quotes`` served on
that NATS by the test (as ``tests/test_realtime_streams.py`` does)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from shared.messaging import Delivered
from tests.infra import TestInfra
from tests.inprocess import InProcessApp, running_app


class _QuotesRequest(BaseModel):
    tickers: list[str]


class _QuotesReply(BaseModel):
    quotes: list[dict[str, Any]]
    missing: list[str]


PRICES: dict[str, float] = {}


@pytest.fixture(scope="module")
async def portfolio(
    infra: TestInfra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessApp]:
    # Bursts in these tests queue for the pool far longer than a real client would wait.
    async with running_app(
        "portfolio", infra, tmp_path_factory.mktemp("pf"), db_acquire_timeout_seconds=60.0
    ) as running:
        yield running


@pytest.fixture
async def market(portfolio: InProcessApp) -> AsyncIterator[dict[str, float]]:
    """Market's quote responder on the bus for one test, answering from ``PRICES``
    (tickers the test makes up, so tests never see each other's prices). A test without
    it finds nobody serving the subject: market is down."""

    async def quotes(request: _QuotesRequest, _: Delivered) -> BaseModel:
        return _QuotesReply(
            quotes=[
                {
                    "ticker": t,
                    "price": PRICES[t],
                    "previous_close": PRICES[t],
                    "change": 0.0,
                    "change_percent": 0.0,
                    "volume": 1000,
                    "ts": 1_764_000_000_000,
                }
                for t in request.tickers
                if t in PRICES
            ],
            missing=[t for t in request.tickers if t not in PRICES],
        )

    bus = portfolio.app.state.resources.bus
    responder = await bus.serve("market.rpc.quotes", _QuotesRequest, quotes, queue=None)
    yield PRICES
    await responder.unsubscribe()
