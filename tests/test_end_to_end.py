"""The platform end to end: every part running as a process, called through the gateway."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.demo import DEMO_ACCOUNTS
from tests.conftest import login
from tests.platform import Platform, free_port

pytestmark = pytest.mark.e2e

ACCOUNTS = {role: (username, password) for role, username, password in DEMO_ACCOUNTS}


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error_code", "message", "details", "timestamp", "request_id"}
    assert body["error_code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_health_reports_every_service_up(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/api/v1/health")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["status"] == "ok"
    assert report["failing"] == []
    assert set(report["services"]) == {"market", "recommendations", "portfolio", "realtime"}
    assert set(report["gateway"]["checks"]) == {"postgres", "redis", "nats"}
    for service in report["services"].values():
        assert set(service["checks"]) == {"postgres", "redis", "nats"}


async def test_login_then_read_market_data(gateway: httpx.AsyncClient) -> None:
    headers = await login(gateway, *ACCOUNTS["viewer"])
    page = await gateway.get("/api/v1/stocks", params={"limit": 5}, headers=headers)
    assert page.status_code == 200, page.text
    body = page.json()
    assert len(body["items"]) == 5
    assert body["next_cursor"]
    rest = await gateway.get(
        "/api/v1/stocks", params={"limit": 500, "cursor": body["next_cursor"]}, headers=headers
    )
    tickers = [s["ticker"] for s in body["items"]] + [s["ticker"] for s in rest.json()["items"]]
    assert tickers == sorted(tickers) and len(tickers) == len(set(tickers)) >= 10

    stock = await gateway.get(f"/api/v1/stocks/{tickers[0].lower()}", headers=headers)
    assert stock.status_code == 200
    assert stock.json()["ticker"] == tickers[0]
    assert stock.json()["data_source"] == "simulated"
    assert stock.json()["last_price"] > 0


async def test_market_errors_use_the_envelope(gateway: httpx.AsyncClient) -> None:
    headers = await login(gateway, *ACCOUNTS["viewer"])
    missing = await gateway.get("/api/v1/stocks/ZZZZ", headers=headers)
    assert_envelope(missing, 404, "STOCK_NOT_FOUND")
    malformed = await gateway.get("/api/v1/stocks/TOOLONG1", headers=headers)
    body = assert_envelope(malformed, 422, "VALIDATION_ERROR")
    assert body["details"]["errors"][0]["loc"] == ["path", "ticker"]
    bad_cursor = await gateway.get("/api/v1/stocks", params={"cursor": "@@@"}, headers=headers)
    assert_envelope(bad_cursor, 422, "INVALID_CURSOR")
    anonymous = await gateway.get("/api/v1/stocks")
    assert_envelope(anonymous, 401, "UNAUTHENTICATED")
    forged = await gateway.get("/api/v1/stocks", headers={"Authorization": "Bearer a.b.c"})
    assert_envelope(forged, 401, "INVALID_TOKEN")
    unknown = await gateway.get("/api/v1/nowhere", headers=headers)
    assert_envelope(unknown, 404, "NOT_FOUND")


async def test_wrong_password_and_unknown_user_answer_alike(gateway: httpx.AsyncClient) -> None:
    username, _ = ACCOUNTS["viewer"]
    wrong = await gateway.post(
        "/api/v1/auth/token", data={"username": username, "password": "not-the-password"}
    )
    nobody = await gateway.post(
        "/api/v1/auth/token", data={"username": "no-such-user", "password": "whatever-pass"}
    )
    for response in (wrong, nobody):
        assert_envelope(response, 401, "INVALID_CREDENTIALS")
    assert wrong.json()["message"] == nobody.json()["message"]


async def test_recommendations_carry_disclosures(gateway: httpx.AsyncClient) -> None:
    """Nobody asks for a run: the service catches up on the latest session by itself."""
    headers = await login(gateway, *ACCOUNTS["analyst"])
    for _ in range(240):
        response = await gateway.get("/api/v1/recommendations", headers=headers)
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        if items:
            break
        await asyncio.sleep(0.5)
    assert items
    run = await gateway.get(
        f"/api/v1/recommendations/runs/{response.json()['run_id']}", headers=headers
    )
    assert run.status_code == 200 and run.json()["status"] == "completed"
    verify = await gateway.get("/api/v1/recommendations/ledger/verify", headers=headers)
    assert verify.status_code == 200 and verify.json()["intact"] is True
    replay = await gateway.get(f"/api/v1/recommendations/{items[0]['id']}/replay", headers=headers)
    assert replay.status_code == 200 and replay.json()["identical"] is True
    for item in items:
        assert item["action"] in {"BUY", "HOLD", "SELL"} and 0 <= item["confidence"] <= 1
        assert item["methodology_disclosure"] and item["data_sources"] and item["thesis"]


async def test_portfolios_belong_to_their_owner(gateway: httpx.AsyncClient) -> None:
    viewer = await login(gateway, *ACCOUNTS["viewer"])
    analyst = await login(gateway, *ACCOUNTS["analyst"])
    name = f"growth-{uuid.uuid4().hex[:6]}"
    created = await gateway.post(
        "/api/v1/portfolio", json={"name": name, "cash": "1000.50"}, headers=viewer
    )
    assert created.status_code == 201, created.text
    cash = created.json()["cash"]
    assert isinstance(cash, str) and Decimal(cash) == Decimal("1000.50")  # exact, not a float
    again = await gateway.post("/api/v1/portfolio", json={"name": name}, headers=viewer)
    assert_envelope(again, 409, "PORTFOLIO_NAME_TAKEN")
    extra = await gateway.post(
        "/api/v1/portfolio", json={"name": "x", "owner_id": "someone"}, headers=viewer
    )
    assert_envelope(extra, 422, "VALIDATION_ERROR")

    mine = (await gateway.get("/api/v1/portfolios", headers=viewer)).json()["items"]
    theirs = (await gateway.get("/api/v1/portfolios", headers=analyst)).json()["items"]
    assert name in [p["name"] for p in mine]
    assert name not in [p["name"] for p in theirs]


async def test_alert_rules_are_private(gateway: httpx.AsyncClient) -> None:
    viewer = await login(gateway, *ACCOUNTS["viewer"])
    analyst = await login(gateway, *ACCOUNTS["analyst"])
    rule = await gateway.post(
        "/api/v1/alerts",
        json={"ticker": "ACME", "condition": "price_above", "threshold": "123.45"},
        headers=viewer,
    )
    assert rule.status_code == 201, rule.text
    rule_id = rule.json()["id"]
    stolen = await gateway.delete(f"/api/v1/alerts/{rule_id}", headers=analyst)
    assert_envelope(stolen, 404, "ALERT_RULE_NOT_FOUND")
    assert rule_id not in [
        r["id"] for r in (await gateway.get("/api/v1/alerts", headers=analyst)).json()["items"]
    ]
    deleted = await gateway.delete(f"/api/v1/alerts/{rule_id}", headers=viewer)
    assert deleted.status_code == 204


async def test_request_id_travels_to_the_service(
    gateway: httpx.AsyncClient, platform: Platform
) -> None:
    headers = await login(gateway, *ACCOUNTS["viewer"])
    request_id = f"e2e-{uuid.uuid4().hex}"
    response = await gateway.get(
        "/api/v1/stocks/ACME", headers={**headers, "X-Request-ID": request_id}
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == request_id
    for _ in range(50):  # the service writes its access line just after answering
        if request_id in platform.processes["market"].log_text():
            break
        await asyncio.sleep(0.05)
    market_lines = [
        line for line in platform.processes["market"].log_text().splitlines() if request_id in line
    ]
    gateway_lines = [
        line for line in platform.processes["gateway"].log_text().splitlines() if request_id in line
    ]
    assert market_lines and gateway_lines
    assert '"request_id":"' + request_id in market_lines[0]


async def test_health_names_redis_when_it_is_unreachable(platform: Platform) -> None:

    closed = free_port()  # nothing listens there
    gateway = platform.start_extra(
        "gateway", {"GATEWAY_REDIS_URL": f"redis://127.0.0.1:{closed}/0"}, tag="-no-redis"
    )
    try:
        # Wait on /live: this test is about the health report, not readiness.
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10.0) as client:
            for _ in range(200):
                try:
                    if (await client.get("/live")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            response = await client.get("/api/v1/health")
        assert response.status_code == 503, response.text
        report = response.json()
        assert "redis" in report["failing"]
        assert report["gateway"]["checks"]["redis"]["status"] == "down"
        assert report["services"]["market"]["status"] == "up"
    finally:
        gateway.stop()
