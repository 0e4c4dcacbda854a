"""The common app: error envelope everywhere, request ids, no leaked internals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from shared.errors import NotFoundError
from shared.http import create_service_app

router = APIRouter()


class Body(BaseModel):
    amount: int


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("secret connection string postgres://admin:hunter2@db")


@router.get("/missing")
async def missing() -> None:
    raise NotFoundError("No such thing.", details={"id": 7})


@router.post("/echo")
async def echo(body: Body) -> Body:
    return body


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async def failing() -> None:
        raise ConnectionError("down")

    async def fine() -> None:
        return None

    app.state.readiness_checks = {"db": fine, "cache": failing}
    yield


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_service_app(
        name="test", title="t", version="0", lifespan=lifespan, routers=[router]
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with lifespan(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


ENVELOPE = {"error_code", "message", "details", "timestamp", "request_id"}


async def test_domain_error_renders_the_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/missing", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 404
    body = response.json()
    assert set(body) == ENVELOPE
    assert body["error_code"] == "NOT_FOUND"
    assert body["details"] == {"id": 7}
    assert body["request_id"] == "abc-123" == response.headers["x-request-id"]
    assert body["timestamp"].endswith("Z")


async def test_unexpected_error_does_not_leak(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom")
    assert response.status_code == 500
    assert response.json()["error_code"] == "INTERNAL_ERROR"
    assert "hunter2" not in response.text and "RuntimeError" not in response.text
    assert response.json()["request_id"] == response.headers["x-request-id"]


async def test_validation_error_names_the_field_without_echoing_it(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/echo", json={"amount": "<script>not-a-number</script>"})
    assert response.status_code == 422
    body = response.json()
    assert body["error_code"] == "VALIDATION_ERROR"
    assert body["details"]["errors"][0]["loc"] == ["body", "amount"]
    assert "<script>" not in response.text


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    assert (await client.get("/nope")).json()["error_code"] == "NOT_FOUND"
    wrong_method = await client.delete("/echo")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error_code"] == "METHOD_NOT_ALLOWED"


async def test_malformed_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/missing", headers={"X-Request-ID": "bad id\twith spaces"})
    assert response.headers["x-request-id"] != "bad id\twith spaces"
    assert len(response.headers["x-request-id"]) == 32


async def test_live_ready_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/live")).status_code == 200
    ready = await client.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["db"]["status"] == "up"
    assert ready.json()["checks"]["cache"] == {
        "status": "down",
        "error": "ConnectionError: down",
        "required": True,  # the part named no required ones: every check counts
    }
    await client.get("/missing")
    metrics = (await client.get("/metrics")).text
    assert (
        'http_requests_total{method="GET",route="/missing",service="test",status="404"}' in metrics
    )
