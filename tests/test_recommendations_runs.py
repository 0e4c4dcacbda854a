"""Runs across contexts, in process: the real market service (a small simulated universe)
answers the inputs over NATS; two recommendations replicas consume its end-of-day events;
POST /runs queues on-demand runs. In a database and NATS namespace of their own, so the
runs here never meet the session's."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest

from bourse.parts import MARKET, RECOMMENDATIONS
from services.market import events as market_events
from shared.db.pool import open_connection
from shared.messaging import connect_bus
from tests.infra import TestInfra, own_infra
from tests.inprocess import InProcessApp, running_app

UNIVERSE = 120


@pytest.fixture(scope="module")
async def runs_infra(infra: TestInfra) -> AsyncIterator[TestInfra]:
    async with own_infra(infra, "runs", [MARKET, RECOMMENDATIONS]) as own:
        yield own


@pytest.fixture(scope="module")
async def market(
    runs_infra: TestInfra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessApp]:
    async with running_app(
        "market",
        runs_infra,
        tmp_path_factory.mktemp("market"),
        universe_size=UNIVERSE,
        universe_years=2,
        feed_rate=400.0,
    ) as app:
        admin = await open_connection(runs_infra.admin_url)
        try:
            for _ in range(600):
                state = await admin.fetchval(
                    "SELECT state FROM market.universe_loads ORDER BY id DESC LIMIT 1"
                )
                if state == "complete":
                    break
                await asyncio.sleep(0.2)
            assert state == "complete"
        finally:
            await admin.close()
        yield app


@pytest.fixture(scope="module")
async def replicas(
    market: InProcessApp, runs_infra: TestInfra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[InProcessApp, InProcessApp]]:
    work = tmp_path_factory.mktemp("rec")
    async with (
        running_app("recommendations", runs_infra, work, catch_up_run=False) as one,
        running_app("recommendations", runs_infra, work, catch_up_run=False) as two,
    ):
        yield one, two


async def sessions(infra: TestInfra) -> list[date]:
    conn = await open_connection(infra.admin_url)
    try:
        rows = await conn.fetch(
            "SELECT DISTINCT day FROM market.daily_bars ORDER BY day DESC LIMIT 5"
        )
    finally:
        await conn.close()
    return [r["day"] for r in rows]


async def runs_of_day(infra: TestInfra, day: date) -> list[dict[str, Any]]:
    conn = await open_connection(infra.admin_url)
    try:
        rows = await conn.fetch(
            "SELECT r.id, r.status, r.kind, count(c.id) AS calls"
            " FROM recommendations.runs r LEFT JOIN recommendations.recommendations c"
            " ON c.run_id = r.id WHERE r.trading_day = $1 GROUP BY r.id",
            day,
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def wait_for_run(app: InProcessApp, run_id: str, *, timeout: float = 60.0) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for _ in range(int(timeout / 0.25)):
        response = await app.client.get(
            f"/api/v1/recommendations/runs/{run_id}", headers=app.token()
        )
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in {"completed", "failed"}:
            return body
        await asyncio.sleep(0.25)
    raise AssertionError(f"run {run_id} still {body.get('status')}")


async def test_one_run_per_trading_day_under_redelivery_and_two_replicas(
    replicas: tuple[InProcessApp, InProcessApp], runs_infra: TestInfra
) -> None:
    day = (await sessions(runs_infra))[0]
    one, _ = replicas
    before = await one.client.get(
        "/api/v1/recommendations", params={"limit": 1}, headers=one.token()
    )
    assert before.json() == {"run_id": None, "as_of": None, "items": [], "next_cursor": None}
    bus = await connect_bus(runs_infra.nats_url, name="test-market", prefix=runs_infra.nats_prefix)
    try:
        payload = market_events.EodCompleted(
            session=day, securities=UNIVERSE, bars_inserted=0, bars_updated=0, source="feed"
        )
        # The same session announced twice (two events: JetStream's dedupe does not apply),
        # and one of them delivered again past the dedupe window.
        first, second = market_events.eod_event(payload), market_events.eod_event(payload)
        for event in (first, second):
            await bus.publish_event(market_events.EOD_COMPLETED, event)
        await bus.publish_event_raw(
            market_events.EOD_COMPLETED,
            first.model_dump_json().encode(),
            msg_id=f"again-{first.event_id}",
        )
        for _ in range(240):
            done = [r for r in await runs_of_day(runs_infra, day) if r["status"] == "completed"]
            if done:
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(3.0)  # room for a second run to show up, if there were one
    finally:
        await bus.close()
    runs = await runs_of_day(runs_infra, day)
    assert [(r["status"], r["kind"]) for r in runs] == [("completed", "scheduled")]
    assert runs[0]["calls"] >= UNIVERSE * 0.9  # market's universe, less any too short

    # The cached (empty) list was dropped when the run was published.
    listed = await one.client.get(
        "/api/v1/recommendations", params={"limit": 1}, headers=one.token()
    )
    assert listed.json()["run_id"] == str(runs[0]["id"])
    # Sectors come from market.rpc.universe (the tick stand-in knew none).
    assert listed.json()["items"][0]["sector"]
    run = await wait_for_run(one, str(runs[0]["id"]))
    assert run["trading_day"] == day.isoformat() and run["called"] == runs[0]["calls"]
    assert {"inputs_history", "model", "publish", "total"} <= set(run["timings"])


async def test_on_demand_runs_need_an_analyst_and_a_free_day(
    replicas: tuple[InProcessApp, InProcessApp], runs_infra: TestInfra
) -> None:
    one, two = replicas
    days = await sessions(runs_infra)
    viewer = await one.client.post(
        "/api/v1/recommendations/runs", json={}, headers=one.token("viewer")
    )
    assert viewer.status_code == 403
    earlier = days[2]
    queued = await one.client.post(
        "/api/v1/recommendations/runs",
        json={"as_of": earlier.isoformat()},
        headers=one.token("analyst"),
    )
    assert queued.status_code == 202, queued.text
    assert queued.json()["status"] == "queued" and queued.json()["kind"] == "on_demand"
    run = await wait_for_run(two, queued.json()["id"])
    assert run["status"] == "completed", run["error"]
    assert run["trading_day"] == earlier.isoformat() and run["called"] >= UNIVERSE * 0.9
    again = await two.client.post(
        "/api/v1/recommendations/runs",
        json={"as_of": earlier.isoformat()},
        headers=two.token("admin"),
    )
    assert again.status_code == 409
    assert again.json()["error_code"] == "RUN_EXISTS"
    assert again.json()["details"] == {"run_id": run["id"]}
    bad = await one.client.post(
        "/api/v1/recommendations/runs", json={"when": "now"}, headers=one.token("analyst")
    )
    assert bad.status_code == 422
    listing = await one.client.get("/api/v1/recommendations/runs", headers=one.token())
    assert run["id"] in {r["id"] for r in listing.json()["items"]}


async def test_the_walk_forward_backfill_fills_the_past_once_and_labelled(
    replicas: tuple[InProcessApp, InProcessApp], runs_infra: TestInfra
) -> None:
    one, _ = replicas
    runner = one.app.state.resources.extras["runner"]
    published = await runner.backfill(years=2)
    assert published >= 6  # two years of sessions: the month-ends after the first 260
    assert await runner.backfill(years=2) == 0  # again: every month-end has its run
    conn = await open_connection(runs_infra.admin_url)
    try:
        runs = await conn.fetch(
            "SELECT trading_day, kind, status, calibration FROM recommendations.runs"
            " WHERE hypothetical ORDER BY trading_day"
        )
        calendar = [
            r["day"]
            for r in await conn.fetch("SELECT DISTINCT day FROM market.daily_bars ORDER BY day")
        ]
        live_calls_hypothetical = await conn.fetchval(
            "SELECT count(*) FROM recommendations.recommendations r"
            " JOIN recommendations.runs u ON u.id = r.run_id"
            " WHERE u.hypothetical <> r.hypothetical"
        )
    finally:
        await conn.close()
    assert len(runs) == published
    assert {(r["kind"], r["status"]) for r in runs} == {("backfill", "completed")}
    days = [r["trading_day"] for r in runs]
    # Month-ends of market's calendar: the next session is in another month.
    following = dict(itertools.pairwise(calendar))
    assert all(following[d].month != d.month for d in days)
    assert runs[0]["calibration"] == {}  # nothing had matured yet: the prior
    assert live_calls_hypothetical == 0
    record = await one.client.get("/api/v1/recommendations/track-record", headers=one.token())
    body = record.json()
    assert body["hypothetical"]["calls"] >= (published - 1) * UNIVERSE * 0.8
    assert body["hypothetical"]["first_as_of"] == days[0].isoformat()
    history = await one.client.get(
        "/api/v1/recommendations/history",
        params={"hypothetical": "true", "limit": 5},
        headers=one.token(),
    )
    assert all("HYPOTHETICAL" in i["methodology_disclosure"] for i in history.json()["items"])
