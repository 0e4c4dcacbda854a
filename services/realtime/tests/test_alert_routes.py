"""Alert-rule and alert-history routes, run in process on the real PostgreSQL, Redis and
NATS (identity stands in through the test's signing key). Grouped per route."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shared.db import open_connection
from tests.infra import TestInfra
from tests.inprocess import InProcessApp, running_app

RULE = {"ticker": "ACME", "condition": "price_above", "threshold": "100"}


@pytest.fixture(scope="module")
async def realtime(
    infra: TestInfra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessApp]:
    async with running_app("realtime", infra, tmp_path_factory.mktemp("rt")) as running:
        yield running


async def create_rule(
    app: InProcessApp, caller: dict[str, str], **fields: object
) -> dict[str, Any]:
    response = await app.client.post("/api/v1/alerts", json={**RULE, **fields}, headers=caller)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# --- POST /alerts ----------------------------------------------------------------------


async def test_create_returns_the_rule_and_lists_it(realtime: InProcessApp) -> None:
    caller = realtime.token()
    created = await create_rule(realtime, caller)
    assert created["ticker"] == "ACME" and created["armed"] is True
    listed = (await realtime.client.get("/api/v1/alerts", headers=caller)).json()["items"]
    assert [r["id"] for r in listed] == [created["id"]]


async def test_create_refuses_a_rule_of_the_wrong_shape_and_stores_nothing(
    realtime: InProcessApp,
) -> None:
    caller = realtime.token()
    response = await realtime.client.post(
        "/api/v1/alerts", json={"ticker": "ACME", "condition": "price_above"}, headers=caller
    )
    assert response.status_code == 422
    assert response.json()["details"]["field"] == "threshold"
    assert (await realtime.client.get("/api/v1/alerts", headers=caller)).json()["items"] == []


async def test_a_burst_of_creates_beyond_the_pool_all_complete(realtime: InProcessApp) -> None:
    caller = realtime.token()
    burst = 5 * realtime.settings.db_pool_max
    async with asyncio.timeout(60):
        answers = await asyncio.gather(
            *(
                realtime.client.post("/api/v1/alerts", json=RULE, headers=caller)
                for _ in range(burst)
            )
        )
    assert [a.status_code for a in answers] == [201] * burst
    listed = (await realtime.client.get("/api/v1/alerts", headers=caller)).json()["items"]
    assert len(listed) == burst


async def test_the_quota_holds_under_concurrent_creates(realtime: InProcessApp) -> None:
    caller = realtime.token()
    answers = await asyncio.gather(
        *(realtime.client.post("/api/v1/alerts", json=RULE, headers=caller) for _ in range(110))
    )
    codes = sorted(a.status_code for a in answers)
    assert codes.count(201) == 100 and codes.count(409) == 10, codes


# --- GET, PATCH, DELETE /alerts/{rule_id} ----------------------------------------------


async def test_another_users_rule_is_not_found_to_every_method(realtime: InProcessApp) -> None:
    owner, other = realtime.token(), realtime.token()
    rule_id = (await create_rule(realtime, owner))["id"]
    path = f"/api/v1/alerts/{rule_id}"
    assert (await realtime.client.get(path, headers=other)).status_code == 404
    patched = await realtime.client.patch(path, json={"active": False}, headers=other)
    assert patched.status_code == 404
    assert (await realtime.client.delete(path, headers=other)).status_code == 404
    unchanged = (await realtime.client.get(path, headers=owner)).json()
    assert unchanged["active"] is True


async def test_patch_changes_the_rule(realtime: InProcessApp) -> None:
    caller = realtime.token()
    rule_id = (await create_rule(realtime, caller))["id"]
    path = f"/api/v1/alerts/{rule_id}"
    patched = await realtime.client.patch(path, json={"threshold": "120"}, headers=caller)
    assert patched.status_code == 200 and patched.json()["threshold"] == "120.0000"
    assert (await realtime.client.get(path, headers=caller)).json()["threshold"] == "120.0000"


async def test_delete_removes_the_rule(realtime: InProcessApp) -> None:
    caller = realtime.token()
    rule_id = (await create_rule(realtime, caller))["id"]
    path = f"/api/v1/alerts/{rule_id}"
    assert (await realtime.client.delete(path, headers=caller)).status_code == 204
    assert (await realtime.client.get(path, headers=caller)).status_code == 404


async def test_an_unknown_rule_id_is_not_found(realtime: InProcessApp) -> None:
    response = await realtime.client.get(f"/api/v1/alerts/{uuid.uuid4()}", headers=realtime.token())
    assert response.status_code == 404
    assert response.json()["error_code"] == "ALERT_RULE_NOT_FOUND"


# --- GET /alerts/history ---------------------------------------------------------------


async def test_history_of_a_new_user_is_empty(realtime: InProcessApp) -> None:
    response = await realtime.client.get("/api/v1/alerts/history", headers=realtime.token())
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


async def test_every_route_needs_a_token(realtime: InProcessApp) -> None:
    for path in ("/api/v1/alerts", "/api/v1/alerts/history"):
        response = await realtime.client.get(path)
        assert response.status_code == 401
        assert response.json()["error_code"] == "UNAUTHENTICATED"


async def test_a_query_cut_by_the_statement_timeout_answers_503_and_the_part_recovers(
    infra: TestInfra, tmp_path: Path
) -> None:
    # A deliberately slow query: the rule table is locked by another session, so the read
    # waits until PostgreSQL's statement_timeout cuts it.
    async with running_app("realtime", infra, tmp_path, db_statement_timeout_ms=300) as app:
        caller = app.token()
        blocker = await open_connection(infra.admin_url)
        try:
            async with blocker.transaction():
                await blocker.execute("LOCK TABLE realtime.alert_rules IN ACCESS EXCLUSIVE MODE")
                answer = await app.client.get("/api/v1/alerts", headers=caller)
        finally:
            await blocker.close()
        assert answer.status_code == 503, answer.text
        assert answer.json()["error_code"] == "QUERY_TIMEOUT"
        assert answer.headers["Retry-After"] == "1"
        assert (await app.client.get("/api/v1/alerts", headers=caller)).status_code == 200
