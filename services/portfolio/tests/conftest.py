"""Fixtures of the portfolio service's tests: the service in process on the session's
real PostgreSQL, Redis and NATS, and market's side of ``market.rpc.quotes`` served on
that NATS by the test (as ``tests/test_realtime_streams.py`` does)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from pydantic import BaseModel

from services.portfolio.tests.support import HISTORY, INDEX, PRICES, SECTORS
from shared.messaging import Delivered
from tests.infra import TestInfra
from tests.inprocess import InProcessApp, running_app


class _QuotesRequest(BaseModel):
    tickers: list[str]


class _QuotesReply(BaseModel):
    quotes: list[dict[str, Any]]
    missing: list[str]


class _HistoryRequest(BaseModel):
    tickers: list[str]
    start: date
    end: date
    adjusted: bool = True
    cursor: int | None = None


class _HistoryReply(BaseModel):
    series: list[dict[str, Any]]
    missing: list[str]
    next_cursor: int | None


class _IndexRequest(BaseModel):
    start: date
    end: date


class _IndexReply(BaseModel):
    dates: list[date]
    price_return: list[float]
    total_return: list[float]


@pytest.fixture(scope="module")
async def portfolio(
    infra: TestInfra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessApp]:
    # Bursts in these tests queue for the pool far longer than a real client would wait.
    # Its own NATS subjects: market's side is the ``market`` fixture, never the market
    # process an end-to-end test may have started on the session's prefix (then "market
    # is down" would depend on which tests ran first).
    async with running_app(
        "portfolio",
        infra,
        tmp_path_factory.mktemp("pf"),
        db_acquire_timeout_seconds=60.0,
        nats_prefix=f"{infra.nats_prefix}pf{uuid.uuid4().hex[:8]}",
    ) as running:
        yield running


@pytest.fixture
async def market(portfolio: InProcessApp) -> AsyncIterator[dict[str, float]]:
    """Market's quote, history and index responders on the bus for one test, answering
    from ``PRICES``, ``HISTORY`` and ``INDEX`` (tickers the test makes up, so tests never see each
    other's prices). A test without it finds nobody serving the subjects: market is down."""

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
                    "sector": SECTORS.get(t),
                }
                for t in request.tickers
                if t in PRICES
            ],
            missing=[t for t in request.tickers if t not in PRICES],
        )

    async def history(request: _HistoryRequest, _: Delivered) -> BaseModel:
        # One ticker a page, so the client's paging is exercised; unadjusted only.
        assert request.adjusted is False
        at = request.cursor or 0
        ticker = request.tickers[at] if at < len(request.tickers) else None
        known = HISTORY.get(ticker or "", [])
        rows = [(d, c) for d, c in known if request.start <= d <= request.end]
        return _HistoryReply(
            series=[
                {"ticker": ticker, "dates": [d for d, _ in rows], "closes": [c for _, c in rows]}
            ]
            if ticker in HISTORY
            else [],
            missing=[ticker] if ticker is not None and ticker not in HISTORY else [],
            next_cursor=at + 1 if at + 1 < len(request.tickers) else None,
        )

    async def index(request: _IndexRequest, _: Delivered) -> BaseModel:
        days = sorted(d for d in INDEX if request.start <= d <= request.end)
        # The price-return levels are not what portfolio should read: a constant.
        return _IndexReply(
            dates=days, price_return=[1.0] * len(days), total_return=[INDEX[d] for d in days]
        )

    bus = portfolio.app.state.resources.bus
    responders = [
        await bus.serve("market.rpc.index", _IndexRequest, index, queue=None),
        await bus.serve("market.rpc.quotes", _QuotesRequest, quotes, queue=None),
        await bus.serve("market.rpc.history", _HistoryRequest, history, queue=None),
    ]
    yield PRICES
    for responder in responders:
        await responder.unsubscribe()
