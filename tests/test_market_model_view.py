"""Market's model view (``include_ml``) fed by the real recommendations service, in process,
on the real PostgreSQL, Redis and NATS/JetStream: recommendations publishes runs into its
ledger (its outbox relays ``recommendations.run.completed``) and answers
``recommendations.rpc.latest``; market's durable consumer and start-up refresh keep the read
model on the latest live run. In databases and NATS namespaces of their own; the last test
runs the whole platform as processes, through the gateway."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from bourse.parts import MARKET, RECOMMENDATIONS
from gateway.demo import DEMO_ACCOUNTS
from services.market.domain.model_view import HeldRun
from services.market.model_view import ModelViewFeed
from services.market.recommendation_inputs import RunCompleted
from services.market.repository import model_view as market_view
from services.market.service import loading
from services.recommendations import events as published
from services.recommendations import service as recommendations_service
from services.recommendations.tests.test_routes import publish, synthetic_panel
from shared.db import open_connection
from shared.messaging import Delivered, Event, connect_bus
from tests.conftest import login
from tests.infra import TestInfra, own_infra
from tests.inprocess import InProcessApp, running_app

ACCOUNTS = {role: (username, password) for role, username, password in DEMO_ACCOUNTS}
DAY_1, DAY_2, DAY_3 = date(1995, 10, 2), date(1995, 10, 16), date(1995, 11, 1)


async def load_universe(infra: TestInfra, size: int, seed: int) -> list[str]:
    conn = await open_connection(infra.dsn_for(MARKET))
    try:
        await loading.load_universe_on(conn, loading.universe_spec(size, 1, seed))
        return [r["ticker"] for r in await conn.fetch("SELECT ticker FROM securities ORDER BY 1")]
    finally:
        await conn.close()


async def held(infra: TestInfra) -> HeldRun | None:
    conn = await open_connection(infra.dsn_for(MARKET))
    try:
        return await market_view.held_run(conn)
    finally:
        await conn.close()


async def read_model(infra: TestInfra) -> dict[str, dict[str, Any]]:
    """Every call the read model holds, by ticker, in the publisher's field names."""
    conn = await open_connection(infra.dsn_for(MARKET))
    try:
        rows = await conn.fetch("SELECT * FROM recommendation_calls")
    finally:
        await conn.close()
    return {
        r["ticker"]: {
            "id": r["recommendation_id"],
            "action": r["action"],
            "confidence": r["confidence"],
            "score": r["score"],
            "target_price": r["target_price"],
            "price_at_call": r["price_at_call"],
            "horizon_days": r["horizon_days"],
            "factors": r["factors"],
            "thesis": r["thesis"],
            "risk_factors": list(r["risk_factors"]),
            "methodology_disclosure": r["methodology_disclosure"],
            "data_sources": list(r["data_sources"]),
        }
        for r in rows
    }


async def publishers_run(infra: TestInfra, run_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    """The run's calls as recommendations itself answers them (its own use case)."""
    conn = await open_connection(infra.dsn_for(RECOMMENDATIONS))
    calls: list[published.LatestCall] = []
    cursor = None
    try:
        while True:
            reply = await recommendations_service.latest_calls(
                conn, published.LatestRequest(cursor=cursor, limit=50)
            )
            assert reply.run_id == run_id
            calls.extend(reply.calls)
            cursor = reply.next_cursor
            if cursor is None:
                break
    finally:
        await conn.close()
    fields = set(next(iter((await read_model(infra)).values()), {})) or {"id"}
    return {c.ticker: c.model_dump(include=fields) for c in calls}


async def wait_for(infra: TestInfra, run_id: uuid.UUID, timeout: float = 30.0) -> HeldRun:
    for _ in range(int(timeout / 0.1)):
        now = await held(infra)
        if now is not None and now.stamp.run_id == run_id:
            return now
        await asyncio.sleep(0.1)
    raise AssertionError(f"the read model never held run {run_id} (holds {await held(infra)})")


async def drained(infra: TestInfra, timeout: float = 30.0) -> int:
    """Wait until market's durable consumer has acked everything on the stream; return
    how many messages it was delivered in all."""
    client = await connect_bus(infra.nats_url, name="test-drain", prefix=infra.nats_prefix)
    try:
        stream = client.stream_name(published.STREAM)
        for _ in range(int(timeout / 0.1)):
            info = await client.client.jsm().consumer_info(stream, ModelViewFeed.CONSUMER)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return int(info.delivered.stream_seq or 0)
            await asyncio.sleep(0.1)
    finally:
        await client.close()
    raise AssertionError("market's consumer did not drain the run events")


def market_app(infra: TestInfra, work: Path) -> Any:
    work.mkdir(exist_ok=True)
    return running_app(
        "market",
        infra,
        work,
        universe_autoload=False,
        feed_mode="off",
        model_view_retry_seconds=0.2,
    )


def recommendations_app(infra: TestInfra, work: Path) -> Any:
    work.mkdir(exist_ok=True)
    return running_app("recommendations", infra, work, catch_up_run=False, backfill_years=0)


async def test_at_start_up_market_waits_for_recommendations_then_holds_its_latest_run(
    infra: TestInfra, tmp_path: Path
) -> None:
    async with own_infra(infra, "mlstart", [MARKET, RECOMMENDATIONS]) as own:
        names = await load_universe(own, 24, 5)
        # Recommendations ran before market subscribed: the run is in its ledger.
        run = await publish(own, synthetic_panel(names, seed=3), DAY_2)
        assert run is not None
        async with market_app(own, tmp_path / "m") as market:
            feed: ModelViewFeed = market.app.state.model_view
            await asyncio.sleep(1.0)  # asking, and asking again: nobody answers yet
            assert not feed.initial_refresh_done.is_set() and await held(own) is None
            async with recommendations_app(own, tmp_path / "r"):
                await asyncio.wait_for(feed.initial_refresh_done.wait(), 30)
                now = await wait_for(own, run.run.id)
                assert now.stamp.as_of == DAY_2 and now.calls == len(run.recommendations)
                assert await read_model(own) == await publishers_run(own, run.run.id)
                # Its event, relayed now, finds the run held already: nothing is rewritten.
                assert await drained(own) == 1
                assert await held(own) == now


@pytest.fixture(scope="module")
async def view_infra(infra: TestInfra) -> AsyncIterator[tuple[TestInfra, list[str]]]:
    async with own_infra(infra, "mlview", [MARKET, RECOMMENDATIONS]) as own:
        yield own, await load_universe(own, 30, 9)


@pytest.fixture(scope="module")
async def replicas(
    view_infra: tuple[TestInfra, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[InProcessApp, InProcessApp]]:
    """Two market replicas (one durable consumer shared) and recommendations."""
    own, _ = view_infra
    work = tmp_path_factory.mktemp("mlview")
    async with (
        recommendations_app(own, work / "r"),
        market_app(own, work / "m1") as one,
        market_app(own, work / "m2") as two,
    ):
        yield one, two


async def analysis_ml(market: InProcessApp, ticker: str) -> dict[str, Any]:
    answer = await market.client.get(
        f"/api/v1/stocks/{ticker}/analysis",
        params={"include_ml": "true"},
        headers=market.token(),
    )
    assert answer.status_code == 200, answer.text
    ml: dict[str, Any] = answer.json()["ml"]
    return ml


async def test_runs_reach_the_analysis_in_order_once_and_whole(
    view_infra: tuple[TestInfra, list[str]], replicas: tuple[InProcessApp, InProcessApp]
) -> None:
    own, names = view_infra
    one, two = replicas
    panel = synthetic_panel(names, seed=21)
    first = await publish(own, panel, DAY_2)
    assert first is not None
    await wait_for(own, first.run.id)
    assert await read_model(own) == await publishers_run(own, first.run.id)
    ticker = names[0]
    before = await analysis_ml(one, ticker)  # cached now, for 30 s
    assert before["run_id"] == str(first.run.id)

    # A newer run: the read model moves to it whole, and the cached answers go.
    newer = await publish(own, panel, DAY_3)
    assert newer is not None
    await wait_for(own, newer.run.id)
    await drained(own)
    assert await read_model(own) == await publishers_run(own, newer.run.id)
    await asyncio.sleep(1.1)  # the other replica's one-second local copy, at most
    call = next(r for r in newer.recommendations if r.ticker == ticker)
    for replica in (one, two):
        ml = await analysis_ml(replica, ticker)
        assert (ml["run_id"], ml["recommendation_id"]) == (str(newer.run.id), str(call.id))
        assert (ml["as_of"], ml["action"]) == (DAY_3.isoformat(), call.action.value)
        assert ml["confidence"] == pytest.approx(float(call.confidence))
        assert {f["key"] for f in ml["factors"]} == {f["key"] for f in call.factors}

    # An older trading day published afterwards: its event changes nothing.
    held_now = await held(own)
    older = await publish(own, panel, DAY_1)
    assert older is not None
    await drained(own)
    assert await held(own) == held_now
    assert {c["id"] for c in (await read_model(own)).values()} == {
        r.id for r in newer.recommendations
    }


async def test_a_redelivered_event_changes_nothing(
    view_infra: tuple[TestInfra, list[str]], replicas: tuple[InProcessApp, InProcessApp]
) -> None:
    own, names = view_infra
    one, _ = replicas
    run = await publish(own, synthetic_panel(names, seed=22), date(1995, 11, 15))
    assert run is not None and run.run.trading_day is not None
    now = await wait_for(own, run.run.id)
    await drained(own)
    # The event as the publisher built it, delivered again: through JetStream past its
    # dedupe (another message id), and straight to each replica's handler.
    event = Event[published.RunCompleted](
        event_type=published.RUN_COMPLETED,
        schema_version=published.RUN_COMPLETED_VERSION,
        source=published.SOURCE,
        data=published.RunCompleted(
            run_id=run.run.id,
            as_of=run.run.trading_day,
            model_version=run.run.model_version,
            generated_at=run.recommendations[0].generated_at,
            total_recommendations=len(run.recommendations),
            part=1,
            parts=1,
            changes=[],
        ),
    )
    bus = await connect_bus(own.nats_url, name="test-redeliver", prefix=own.nats_prefix)
    try:
        before = await drained(own)
        await bus.publish_event_raw(
            published.RUN_COMPLETED,
            event.model_dump_json().encode(),
            msg_id=f"again-{uuid.uuid4()}",
        )
        assert await drained(own) == before + 1
    finally:
        await bus.close()
    ours = Event[RunCompleted].model_validate_json(event.model_dump_json())
    delivered = Delivered(subject=published.RUN_COMPLETED, request_id="test", num_delivered=2)
    for replica in replicas:
        await replica.app.state.model_view.handle(ours, delivered)
    assert await held(own) == now  # refreshed_at included: nothing was rewritten
    assert await read_model(own) == await publishers_run(own, run.run.id)
    assert (await analysis_ml(one, names[1]))["run_id"] == str(run.run.id)


@pytest.mark.e2e
async def test_through_the_gateway_the_analysis_includes_the_latest_run(
    gateway: httpx.AsyncClient,
) -> None:
    """The whole platform as processes: nobody asks for a run; recommendations catches up
    on the latest session, and market's analysis answers its call on the stock."""
    headers = await login(gateway, *ACCOUNTS["viewer"])
    listed: dict[str, Any] = {}
    for _ in range(240):
        response = await gateway.get("/api/v1/recommendations", headers=headers)
        assert response.status_code == 200, response.text
        listed = response.json()
        if listed["items"]:
            break
        await asyncio.sleep(0.5)
    assert listed["items"], "no live run was published"
    call = listed["items"][0]
    url = f"/api/v1/stocks/{call['ticker']}/analysis"
    ml: dict[str, Any] | None = None
    for _ in range(120):
        answer = await gateway.get(url, params={"include_ml": "true"}, headers=headers)
        assert answer.status_code == 200, answer.text
        ml = answer.json()["ml"]
        if ml is not None and ml["run_id"] == listed["run_id"]:
            break
        await asyncio.sleep(0.5)
    assert ml is not None and ml["run_id"] == listed["run_id"], ml
    assert ml["recommendation_id"] == call["id"] and ml["as_of"] == call["as_of"]
    for field in (
        "action",
        "confidence",
        "score",
        "target_price",
        "thesis",
        "risk_factors",
        "methodology_disclosure",
        "data_sources",
        "model_version",
        "horizon_days",
    ):
        assert ml[field] == call[field], field
    assert {f["key"]: f["contribution"] for f in ml["factors"]} == {
        f["key"]: f["contribution"] for f in call["factors"]
    }
    plain = await gateway.get(url, headers=headers)
    assert plain.status_code == 200 and "ml" not in plain.json()
