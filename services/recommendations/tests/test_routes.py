"""Recommendation routes, run in process on the real PostgreSQL, Redis and NATS (identity
stands in through the test's signing key), over a ledger of runs the real model made from
hand-built price series, in the tests' own database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any

import asyncpg
import numpy as np
import pytest
from pydantic import BaseModel

from bourse.parts import RECOMMENDATIONS
from services.recommendations import events, service
from services.recommendations.domain import publication
from services.recommendations.domain import spec as s
from services.recommendations.domain.calibration import Calibration
from services.recommendations.domain.factors import Panel
from services.recommendations.schemas import RecommendationPage
from shared.db.pool import open_connection
from shared.messaging import RemoteError, connect_bus
from tests.infra import TestInfra
from tests.inprocess import InProcessApp, running_app

SECTORS = ("Energy", "Utilities", "Technology")


def synthetic_panel(tickers: list[str], *, seed: int, days: int = 320) -> Panel:
    """Random walks with drifts spread from falling to rising, on 1990s sessions (so no
    run here is ever newer than a real one)."""
    rng = np.random.default_rng(seed)
    drifts = np.linspace(-0.002, 0.002, len(tickers))
    steps = rng.normal(drifts[:, None], 0.015, (len(tickers), days))
    closes = 30.0 * np.exp(np.cumsum(steps, axis=1))
    index = 1000.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.01, days)))
    start = np.datetime64("1995-01-02", "D")
    return Panel(
        tickers=tuple(tickers),
        sectors=tuple(SECTORS[i % 3] for i in range(len(tickers))),
        sessions=np.arange(start, start + days),
        closes=closes,
        volumes=rng.uniform(1e4, 1e6, closes.shape),
        default_sources=("market:simulated",),
        benchmark=index,
    )


def tickers(count: int) -> list[str]:
    return [f"T{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(count)]


async def publish(
    infra: TestInfra, panel: Panel, as_of: date, *, hypothetical: bool = False
) -> service.Published | None:
    """Publish a run as the runner does: its own connection and transaction."""
    calls = publication.calls_for_ledger(
        panel, as_of, s.CURRENT, Calibration(), hypothetical=hypothetical
    )
    conn = await open_connection(infra.dsn_for(RECOMMENDATIONS))
    try:
        async with conn.transaction():
            return await service.publish_run(
                conn,
                run_id=uuid.uuid4(),
                kind="backfill" if hypothetical else "on_demand",
                calls=calls,
                calibration=Calibration(),
                model_version=s.CURRENT.version,
                hypothetical=hypothetical,
            )
    finally:
        await conn.close()


PANEL = synthetic_panel(tickers(60), seed=4)
DAY_1 = date(1995, 10, 2)
DAY_2 = date(1995, 11, 1)


@pytest.fixture(scope="module")
async def recommendations(
    ledger_infra: TestInfra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessApp]:
    async with running_app(
        "recommendations", ledger_infra, tmp_path_factory.mktemp("rec"), catch_up_run=False
    ) as app:
        yield app


@pytest.fixture(scope="module")
async def runs(
    recommendations: InProcessApp, ledger_infra: TestInfra
) -> tuple[service.Published, service.Published]:
    first = await publish(ledger_infra, PANEL, DAY_1)
    latest = await publish(ledger_infra, PANEL, DAY_2)
    assert first is not None and latest is not None
    return first, latest


async def get(app: InProcessApp, path: str, **params: Any) -> Any:
    response = await app.client.get(f"/api/v1{path}", params=params, headers=app.token())
    assert response.status_code == 200, response.text
    return response.json()


CONTRACT: dict[str, type | tuple[type, ...]] = {
    "ticker": str,
    "action": str,
    "confidence": float,
    "target_price": (float, type(None)),
    "thesis": str,
    "risk_factors": list,
    "generated_at": str,
    "methodology_disclosure": str,
    "data_sources": list,
    "id": str,
    "run_id": str,
    "model_version": str,
    "horizon_days": int,
    "as_of": str,
    "price_at_call": float,
    "score": float,
    "sector": (str, type(None)),
    "factors": list,
    "inputs_hash": str,
    "hypothetical": bool,
    "ledger_seq": int,
    "ledger_hash": str,
}


def assert_contract(item: dict[str, Any]) -> None:
    assert set(item) == set(CONTRACT)
    for field, kind in CONTRACT.items():
        assert isinstance(item[field], kind), (field, item[field])
    assert item["action"] in {"BUY", "HOLD", "SELL"} and 0 <= item["confidence"] <= 1
    datetime.fromisoformat(item["generated_at"])
    assert all(isinstance(r, str) for r in item["risk_factors"] + item["data_sources"])
    assert [f["key"] for f in item["factors"]] == list(s.CURRENT.keys)
    assert all(
        set(f) == {"key", "value", "z_score", "contribution", "percentile"} for f in item["factors"]
    )


# --- publishing -------------------------------------------------------------------------


async def test_a_trading_day_is_published_once(
    runs: tuple[service.Published, service.Published], ledger_infra: TestInfra
) -> None:
    assert await publish(ledger_infra, PANEL, DAY_2) is None
    first, latest = runs
    assert latest.run.status == "completed" and latest.run.called == len(PANEL.tickers)
    # Completion is stamped when it happens, not at the claiming transaction's start.
    assert latest.run.completed_at is not None and latest.run.completed_at > latest.run.started_at
    assert latest.recommendations[0].prev_hash == first.recommendations[-1].hash
    # The second run's changes are exactly the tickers whose action moved.
    before = {r.ticker: r.action for r in first.recommendations}
    moved = [r for r in latest.recommendations if r.action is not before[r.ticker]]
    assert latest.changed == len(moved)


# --- GET /recommendations ---------------------------------------------------------------


async def test_the_list_is_the_latest_run_in_the_contract(
    recommendations: InProcessApp, runs: tuple[service.Published, service.Published]
) -> None:
    _, latest = runs
    body = await get(recommendations, "/recommendations", limit=500)
    # The body is pre-encoded and cached: it still is the declared model.
    RecommendationPage.model_validate(body)
    assert latest.run.trading_day is not None
    assert body["run_id"] == str(latest.run.id)
    assert body["as_of"] == latest.run.trading_day.isoformat()
    assert len(body["items"]) == len(PANEL.tickers) and body["next_cursor"] is None
    for item in body["items"]:
        assert_contract(item)
        assert item["run_id"] == str(latest.run.id)
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert "SIMULATED" in body["items"][0]["methodology_disclosure"]
    assert body["items"][0]["data_sources"] == ["market:simulated"]


async def test_filters_and_sorting(
    recommendations: InProcessApp, runs: tuple[service.Published, service.Published]
) -> None:
    _, latest = runs
    rows = latest.recommendations
    buys = await get(recommendations, "/recommendations", action="BUY", limit=500)
    assert {i["ticker"] for i in buys["items"]} == {
        r.ticker for r in rows if r.action.value == "BUY"
    }
    energy = await get(recommendations, "/recommendations", sector="Energy", limit=500)
    assert {i["ticker"] for i in energy["items"]} == {
        r.ticker for r in rows if r.sector == "Energy"
    }
    floor = sorted(float(r.confidence) for r in rows)[len(rows) // 2]
    confident = await get(recommendations, "/recommendations", min_confidence=floor, limit=500)
    assert {i["ticker"] for i in confident["items"]} == {
        r.ticker for r in rows if float(r.confidence) >= floor
    }
    one = await get(recommendations, "/recommendations", ticker=rows[3].ticker)
    assert [i["id"] for i in one["items"]] == [str(rows[3].id)]
    by_confidence = await get(recommendations, "/recommendations", sort="confidence", limit=500)
    values = [(i["confidence"], i["ticker"]) for i in by_confidence["items"]]
    assert values == sorted(values, reverse=True)


@pytest.mark.parametrize("sort", ["score", "confidence"])
async def test_pages_cover_the_run_once(
    recommendations: InProcessApp, runs: tuple[service.Published, service.Published], sort: str
) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 7, "sort": sort}
        if cursor:
            params["cursor"] = cursor
        body = await get(recommendations, "/recommendations", **params)
        seen += [i["ticker"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(PANEL.tickers)


async def test_a_cursor_of_another_list_is_refused(
    recommendations: InProcessApp, runs: tuple[service.Published, service.Published]
) -> None:
    page = await get(recommendations, "/recommendations/history", limit=1)
    assert page["next_cursor"]
    response = await recommendations.client.get(
        "/api/v1/recommendations",
        params={"cursor": page["next_cursor"]},
        headers=recommendations.token(),
    )
    assert response.status_code == 422
    assert response.json()["error_code"] == "INVALID_CURSOR"
    by_score = await get(recommendations, "/recommendations", limit=1)
    other_sort = await recommendations.client.get(
        "/api/v1/recommendations",
        params={"cursor": by_score["next_cursor"], "sort": "confidence"},
        headers=recommendations.token(),
    )
    assert other_sort.status_code == 422


async def test_a_forged_cursor_is_refused(recommendations: InProcessApp) -> None:
    response = await recommendations.client.get(
        "/api/v1/recommendations",
        params={"cursor": "bm90LWEtY3Vyc29y"},
        headers=recommendations.token(),
    )
    assert response.status_code == 422
    assert response.json()["error_code"] == "INVALID_CURSOR"


@pytest.mark.parametrize(
    "params", [{"ticker": "aapl"}, {"min_confidence": "1.5"}, {"sort": "price"}, {"action": "buy"}]
)
async def test_bad_filters_are_refused(
    recommendations: InProcessApp, params: dict[str, str]
) -> None:
    response = await recommendations.client.get(
        "/api/v1/recommendations", params=params, headers=recommendations.token()
    )
    assert response.status_code == 422
    assert response.json()["error_code"] == "VALIDATION_ERROR"


async def test_the_list_needs_a_token(recommendations: InProcessApp) -> None:
    response = await recommendations.client.get("/api/v1/recommendations")
    assert response.status_code == 401


# --- history and the track record ---------------------------------------------------------

DAY_0 = date(1995, 9, 1)


@pytest.fixture(scope="module")
async def judged(
    runs: tuple[service.Published, service.Published], ledger_infra: TestInfra
) -> service.Published:
    """A hypothetical run before the live ones, then every call judged on the panel."""
    backtest = await publish(ledger_infra, PANEL, DAY_0, hypothetical=True)
    assert backtest is not None
    conn = await open_connection(ledger_infra.dsn_for(RECOMMENDATIONS))
    try:
        await service.judge(conn, PANEL)
    finally:
        await conn.close()
    return backtest


async def test_history_filters_and_pages(
    recommendations: InProcessApp,
    runs: tuple[service.Published, service.Published],
    judged: service.Published,
) -> None:
    first, _ = runs
    ticker = PANEL.tickers[5]
    one = await get(recommendations, "/recommendations/history", ticker=ticker)
    assert [i["as_of"] for i in one["items"]] == [d.isoformat() for d in (DAY_2, DAY_1, DAY_0)]
    assert [i["hypothetical"] for i in one["items"]] == [False, False, True]
    for item in one["items"]:
        assert_contract(item)
    backtest = await get(
        recommendations, "/recommendations/history", hypothetical="true", limit=500
    )
    assert {i["run_id"] for i in backtest["items"]} == {str(judged.run.id)}
    assert all("HYPOTHETICAL" in i["methodology_disclosure"] for i in backtest["items"])
    by_run = await get(
        recommendations, "/recommendations/history", run_id=str(first.run.id), limit=500
    )
    assert len(by_run["items"]) == len(PANEL.tickers)
    window = await get(
        recommendations, "/recommendations/history", **{"from": "1995-10-01", "to": "1995-10-31"}
    )
    assert {i["as_of"] for i in window["items"]} == {DAY_1.isoformat()}
    sells = await get(recommendations, "/recommendations/history", action="SELL", limit=500)
    assert all(i["action"] == "SELL" for i in sells["items"]) and sells["items"]
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 37, "model_version": s.CURRENT.version}
        if cursor:
            params["cursor"] = cursor
        body = await get(recommendations, "/recommendations/history", **params)
        seen += [i["id"] for i in body["items"]]
        if (cursor := body["next_cursor"]) is None:
            break
    assert len(seen) == len(set(seen)) == 3 * len(PANEL.tickers)


async def test_the_track_record_keeps_live_and_hypothetical_apart(
    recommendations: InProcessApp,
    runs: tuple[service.Published, service.Published],
    judged: service.Published,
) -> None:
    body = await get(recommendations, "/recommendations/track-record")
    live, backtest = body["live"], body["hypothetical"]
    # DAY_1's calls have matured within the panel; DAY_2's have not.
    assert live["calls"] == len(PANEL.tickers) and live["first_as_of"] == DAY_1.isoformat()
    assert backtest["calls"] == len(PANEL.tickers)
    assert backtest["first_as_of"] == DAY_0.isoformat()
    for part in (live, backtest):
        assert set(part["by_action"]) <= {"BUY", "HOLD", "SELL"}
        assert sum(g["calls"] for g in part["by_action"].values()) == part["calls"]
        assert set(part["by_sector"]) <= set(SECTORS)
        assert 0 <= part["brier_score"] <= 1 and 0 <= part["hit_rate"] <= 1
        assert sum(b["calls"] for b in part["reliability"]) == part["calls"]
        assert part["information_coefficient"]["dates"] == 1
    assert body["benchmark"] == "market-index-total-return"
    assert set(live["by_benchmark"]) == {"market-index-total-return"}
    assert set(body["hit_rules"]) == {"BUY", "HOLD", "SELL"}
    other = await get(recommendations, "/recommendations/track-record", model_version="mf-0.0")
    assert other["live"] == {"calls": 0}


# --- GET /recommendations/{id} and replay -------------------------------------------------


async def test_one_call_by_id_and_an_unknown_id(
    recommendations: InProcessApp, runs: tuple[service.Published, service.Published]
) -> None:
    rec = runs[0].recommendations[0]
    body = await get(recommendations, f"/recommendations/{rec.id}")
    assert_contract(body)
    assert (body["ledger_hash"], body["inputs_hash"]) == (rec.hash, rec.inputs_hash)
    missing = await recommendations.client.get(
        f"/api/v1/recommendations/{uuid.uuid4()}", headers=recommendations.token()
    )
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RECOMMENDATION_NOT_FOUND"


async def test_a_replay_is_identical(
    recommendations: InProcessApp, runs: tuple[service.Published, service.Published]
) -> None:
    for rec in (runs[0].recommendations[0], runs[1].recommendations[-1]):
        body = await get(recommendations, f"/recommendations/{rec.id}/replay")
        assert body["identical"] is True and body["inputs_hash_matches"] is True
        assert body["differences"] == []
        original, replayed = body["original"], body["replayed"]
        for field in ("action", "confidence", "score", "target_price", "thesis", "factors"):
            assert replayed[field] == original[field]


# --- the ledger ---------------------------------------------------------------------------


# --- recommendations.rpc.latest ---------------------------------------------------------


class Loose(BaseModel):
    """A request the subject's model refuses (a ticker is upper case)."""

    tickers: list[str]


async def test_other_contexts_page_the_latest_live_run_over_nats(
    recommendations: InProcessApp,
    runs: tuple[service.Published, service.Published],
    ledger_infra: TestInfra,
) -> None:
    first, latest = runs
    bus = await connect_bus(
        ledger_infra.nats_url, name="test-latest", prefix=recommendations.settings.nats_prefix
    )
    try:
        by_ticker = {r.ticker: r for r in latest.recommendations}
        walked: list[events.LatestCall] = []
        cursor, pages = None, 0
        while True:
            page = await bus.request(
                events.RPC_LATEST,
                events.LatestRequest(cursor=cursor, limit=25),
                events.LatestReply,
            )
            assert page.run_id == latest.run.id and page.as_of == latest.run.trading_day
            walked.extend(page.calls)
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert pages == 3 and [c.ticker for c in walked] == sorted(by_ticker)
        for call in walked:
            stored = by_ticker[call.ticker]
            assert (call.id, call.action, call.score) == (
                stored.id,
                stored.action.value,
                stored.score,
            )
            assert call.confidence == float(stored.confidence) and not call.hypothetical
            assert [f.key for f in call.factors] == list(s.CURRENT.keys)

        # By ticker, across pages: a missing ticker is named once, on the page that passed it.
        wanted = [*sorted(by_ticker)[:3], "ZZZZ", "AAAA"]
        page = await bus.request(
            events.RPC_LATEST, events.LatestRequest(tickers=wanted), events.LatestReply
        )
        assert [c.ticker for c in page.calls] == sorted(by_ticker)[:3]
        assert page.missing == ["AAAA", "ZZZZ"] and page.next_cursor is None
        missing: list[str] = []
        seen: list[str] = []
        cursor = None
        while True:
            page = await bus.request(
                events.RPC_LATEST,
                events.LatestRequest(tickers=wanted, cursor=cursor, limit=1),
                events.LatestReply,
            )
            seen += [c.ticker for c in page.calls]
            missing += page.missing
            if (cursor := page.next_cursor) is None:
                break
        assert seen == sorted(by_ticker)[:3] and sorted(missing) == ["AAAA", "ZZZZ"]

        # A walk started on a run stays on it: a cursor names its run.
        stale = f"{first.run.id}/{sorted(by_ticker)[0]}"
        page = await bus.request(
            events.RPC_LATEST, events.LatestRequest(cursor=stale, limit=5), events.LatestReply
        )
        assert page.run_id == first.run.id
        assert {c.id for c in page.calls} <= {r.id for r in first.recommendations}
        for bad in ("nonsense", f"{uuid.uuid4()}/AAA", f"{first.run.id}/"):
            with pytest.raises(RemoteError) as raised:
                await bus.request(
                    events.RPC_LATEST, events.LatestRequest(cursor=bad), events.LatestReply
                )
            assert raised.value.status_code == 422
        with pytest.raises(RemoteError) as raised:
            await bus.request(events.RPC_LATEST, Loose(tickers=["lower"]), events.LatestReply)
        assert raised.value.status_code == 422
    finally:
        await bus.close()


async def test_the_service_role_cannot_change_a_published_call(
    runs: tuple[service.Published, service.Published], ledger_infra: TestInfra
) -> None:
    rec = runs[0].recommendations[0]
    conn = await open_connection(ledger_infra.dsn_for(RECOMMENDATIONS))
    try:
        for statement in (
            "UPDATE recommendations SET action = 'BUY' WHERE id = $1",
            "DELETE FROM recommendations WHERE id = $1",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement, rec.id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("TRUNCATE recommendations CASCADE")
    finally:
        await conn.close()


async def test_even_a_superuser_update_meets_the_trigger(
    runs: tuple[service.Published, service.Published], ledger_infra: TestInfra
) -> None:
    conn = await open_connection(ledger_infra.admin_url)
    try:
        with pytest.raises(asyncpg.RestrictViolationError, match="immutable"):
            await conn.execute(
                "UPDATE recommendations.recommendations SET action = 'BUY' WHERE id = $1",
                runs[0].recommendations[0].id,
            )
    finally:
        await conn.close()


async def test_verify_finds_a_tampered_row(
    recommendations: InProcessApp,
    runs: tuple[service.Published, service.Published],
    ledger_infra: TestInfra,
) -> None:
    intact = await get(recommendations, "/recommendations/ledger/verify")
    admin = await open_connection(ledger_infra.admin_url)
    try:
        total, head = await admin.fetchrow(
            "SELECT count(*), (SELECT hash FROM recommendations.recommendations"
            " ORDER BY seq DESC LIMIT 1) FROM recommendations.recommendations"
        )
    finally:
        await admin.close()
    assert intact["intact"] is True and intact["first_break"] is None
    assert intact["checked"] == intact["last_seq"] == total >= 120
    assert intact["last_hash"] == head

    victim = runs[1].recommendations[7]
    conn = await open_connection(ledger_infra.admin_url)
    try:
        # A superuser can switch the triggers off; the chain still gives the edit away.
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "UPDATE recommendations.recommendations SET confidence = 0.999 WHERE id = $1",
            victim.id,
        )
        broken = await get(recommendations, "/recommendations/ledger/verify")
        assert broken["intact"] is False
        assert broken["first_break"]["seq"] == victim.seq
        assert broken["first_break"]["id"] == str(victim.id)
        assert broken["first_break"]["reason"] == "content"
        assert broken["first_break"]["found"] == victim.content_hash
        assert broken["checked"] == victim.seq
    finally:
        await conn.execute(
            "UPDATE recommendations.recommendations SET confidence = $2 WHERE id = $1",
            victim.id,
            victim.confidence,
        )
        await conn.close()
    assert (await get(recommendations, "/recommendations/ledger/verify"))["intact"] is True
