"""``GET /stocks/{ticker}/analysis?include_ml=true``, in process on the real PostgreSQL,
Redis and NATS: what the read model holds (written here through its repository, as the
consumer writes it) is what the answer says, strictly in the declared model; and the
read model's own rules (one run at a time, never an older one). The consumer fed by the
real recommendations service is tested in ``tests/test_market_model_view.py``.

A database of this module's own, with a tiny simulated universe; each test sets the read
model to the state it needs, and reads tickers no other test reads (answers are cached
for 30 s, and these writes bypass the consumer that drops them)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from bourse.parts import MARKET
from services.market import schemas
from services.market.domain.model_view import ModelCall, RunStamp
from services.market.repository import model_view as repository
from services.market.service import loading
from services.market.tests.test_routes import shape
from shared.db import open_connection
from tests.infra import TestInfra, own_infra
from tests.inprocess import InProcessApp, running_app


@pytest.fixture(scope="module")
async def view_infra(infra: TestInfra) -> AsyncIterator[TestInfra]:
    async with own_infra(infra, "mview", [MARKET]) as own:
        conn = await open_connection(own.dsn_for(MARKET))
        try:
            await loading.load_universe_on(conn, loading.universe_spec(4, 1, 11))
        finally:
            await conn.close()
        yield own


@pytest.fixture(scope="module")
async def market(
    view_infra: TestInfra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessApp]:
    # Nobody answers recommendations.rpc.latest here: the start-up refresh keeps waiting
    # (in the background) and the read model holds only what the tests write.
    async with running_app(
        "market",
        view_infra,
        tmp_path_factory.mktemp("mview"),
        universe_autoload=False,
        feed_mode="off",
        model_view_retry_seconds=30.0,
    ) as app:
        yield app


@pytest.fixture
async def conn(view_infra: TestInfra) -> AsyncIterator[asyncpg.Connection]:
    conn = await open_connection(view_infra.dsn_for(MARKET))
    try:
        yield conn
    finally:
        await conn.close()


async def tickers(conn: asyncpg.Connection) -> list[str]:
    return [r["ticker"] for r in await conn.fetch("SELECT ticker FROM securities ORDER BY 1")]


async def clear(conn: asyncpg.Connection) -> None:
    """The read model as a new database has it: no run."""
    async with conn.transaction():
        await conn.execute("DELETE FROM recommendation_calls")
        await conn.execute(
            "UPDATE recommendation_run SET run_id = NULL, as_of = NULL, generated_at = NULL,"
            " model_version = NULL, calls = NULL, refreshed_at = NULL"
        )


def call(ticker: str, action: str = "BUY", *, score: float = 1.25) -> ModelCall:
    return ModelCall(
        ticker=ticker,
        recommendation_id=uuid.uuid4(),
        action=action,
        confidence=0.64,
        score=score,
        target_price=123.45,
        price_at_call=110.0,
        horizon_days=21,
        factors=[
            {"key": "trend", "value": 0.08, "z_score": 0.5, "contribution": 0.1, "percentile": 0.7},
            {
                "key": "momentum_12_1",
                "value": 0.31,
                "z_score": 1.9,
                "contribution": 0.57,
                "percentile": 0.96,
            },
            {
                "key": "volatility",
                "value": None,
                "z_score": -1.1,
                "contribution": -0.22,
                "percentile": None,
            },
        ],
        thesis=f"{ticker} has risen strongly over the past year.",
        risk_factors=["High volatility: 48% annualised."],
        methodology_disclosure="Criteria, assumptions, horizon and limitations.",
        data_sources=["market:simulated"],
    )


def stamp(as_of: date, minutes: int = 0) -> RunStamp:
    return RunStamp(
        uuid.uuid4(), as_of, datetime(2026, 1, 1, 22, tzinfo=UTC) + timedelta(minutes=minutes)
    )


async def hold(conn: asyncpg.Connection, run: RunStamp, calls: list[ModelCall]) -> bool:
    async with conn.transaction():
        return await repository.replace_if_newer(conn, run, "v-test", calls)


async def analysis(market: InProcessApp, ticker: str, **params: str) -> dict[str, Any]:
    answer = await market.client.get(
        f"/api/v1/stocks/{ticker}/analysis", params=params, headers=market.token()
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def strictly(model: type[schemas.Analysis], body: dict[str, Any]) -> None:
    """``body`` is exactly ``model``: valid, no field it lacks, none of its missing."""
    assert shape(model.model_validate(body).model_dump(mode="json")) == shape(body)


# --- GET /stocks/{ticker}/analysis?include_ml=true ----------------------------------------


async def test_without_include_ml_the_answer_is_unchanged(
    market: InProcessApp, conn: asyncpg.Connection
) -> None:
    ticker = (await tickers(conn))[0]
    await clear(conn)
    assert await hold(conn, stamp(date(2030, 1, 2)), [call(ticker)])
    plain = await analysis(market, ticker)
    off = await analysis(market, ticker, include_ml="false")
    with_ml = await analysis(market, ticker, include_ml="true")
    assert "ml" not in plain and "ml_reason" not in plain
    strictly(schemas.Analysis, plain)
    assert off == plain
    # The same analysis, and the model's section besides.
    assert {k: v for k, v in with_ml.items() if k not in {"ml", "ml_reason"}} == plain
    assert with_ml["ml"] is not None


async def test_before_any_run_the_model_section_is_null_with_a_reason(
    market: InProcessApp, conn: asyncpg.Connection
) -> None:
    await clear(conn)
    ticker = (await tickers(conn))[1]
    body = await analysis(market, ticker, include_ml="true")
    strictly(schemas.AnalysisWithModel, body)
    assert body["ml"] is None
    assert body["ml_reason"].startswith("No recommendation yet")
    assert "no live recommendation run" in body["ml_reason"]


async def test_the_held_call_is_served_with_its_factors_and_disclosures(
    market: InProcessApp, conn: asyncpg.Connection
) -> None:
    called, uncalled = (await tickers(conn))[2:4]
    await clear(conn)
    run = stamp(date(2031, 3, 4))
    stored = call(called, "SELL", score=-0.75)
    assert await hold(conn, run, [stored])
    body = await analysis(market, called, include_ml="true")
    strictly(schemas.AnalysisWithModel, body)
    ml = body["ml"]
    assert body["ml_reason"] is None
    assert (ml["run_id"], ml["recommendation_id"]) == (
        str(run.run_id),
        str(stored.recommendation_id),
    )
    assert (ml["as_of"], ml["generated_at"]) == ("2031-03-04", "2026-01-01T22:00:00+00:00")
    assert ml["model_version"] == "v-test"
    assert (ml["action"], ml["confidence"], ml["score"]) == ("SELL", 0.64, -0.75)
    assert (ml["target_price"], ml["price_at_call"], ml["horizon_days"]) == (123.45, 110.0, 21)
    # Largest absolute contribution first; every factor with its value, z-score and part.
    assert [f["key"] for f in ml["factors"]] == ["momentum_12_1", "volatility", "trend"]
    assert ml["factors"][1] == {
        "key": "volatility",
        "value": None,
        "z_score": -1.1,
        "contribution": -0.22,
        "percentile": None,
    }
    assert ml["thesis"] == stored.thesis and ml["risk_factors"] == stored.risk_factors
    assert ml["methodology_disclosure"] == stored.methodology_disclosure
    assert ml["data_sources"] == ["market:simulated"]

    # The same run made no call on the other ticker: null, and the run's date says which.
    other = await analysis(market, uncalled, include_ml="true")
    strictly(schemas.AnalysisWithModel, other)
    assert other["ml"] is None
    assert other["ml_reason"] == (
        f"No recommendation yet for {uncalled}: the latest run (as of 2031-03-04)"
        " made no call on it."
    )


async def test_an_unknown_ticker_is_not_found_with_or_without_the_model(
    market: InProcessApp,
) -> None:
    for params in ({}, {"include_ml": "true"}):
        answer = await market.client.get(
            "/api/v1/stocks/ZZZZY/analysis", params=params, headers=market.token()
        )
        assert answer.status_code == 404 and answer.json()["error_code"] == "STOCK_NOT_FOUND"
    bad = await market.client.get(
        "/api/v1/stocks/ZZZZY/analysis", params={"include_ml": "maybe"}, headers=market.token()
    )
    assert bad.status_code == 422 and bad.json()["error_code"] == "VALIDATION_ERROR"


# --- the read model: one run at a time, never an older one --------------------------------


async def test_a_run_replaces_the_whole_previous_run(conn: asyncpg.Connection) -> None:
    await clear(conn)
    first, second = stamp(date(2032, 5, 3)), stamp(date(2032, 5, 4))
    assert await hold(conn, first, [call("AAA"), call("BBB")])
    assert await hold(conn, second, [call("BBB", "HOLD"), call("CCC")])
    rows = await conn.fetch("SELECT ticker, run_id, action FROM recommendation_calls ORDER BY 1")
    # AAA had no call in the second run: it is gone, not left over from the first.
    assert [(r["ticker"], r["run_id"], r["action"]) for r in rows] == [
        ("BBB", second.run_id, "HOLD"),
        ("CCC", second.run_id, "BUY"),
    ]
    held = await repository.held_run(conn)
    assert held is not None and held.stamp == second and held.calls == 2


async def test_an_older_run_or_the_same_run_again_changes_nothing(
    conn: asyncpg.Connection,
) -> None:
    await clear(conn)
    newer = stamp(date(2033, 6, 2))
    older_published_later = stamp(date(2033, 6, 1), minutes=90)
    assert await hold(conn, newer, [call("AAA")])
    held = await repository.held_run(conn)
    assert not await hold(conn, older_published_later, [call("ZZZ")])
    assert not await hold(conn, newer, [call("ZZZ")])  # a redelivery of the same run
    assert await repository.held_run(conn) == held  # refreshed_at included: nothing written
    assert [r["ticker"] for r in await conn.fetch("SELECT ticker FROM recommendation_calls")] == [
        "AAA"
    ]
