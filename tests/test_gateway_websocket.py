"""The WebSocket proxy, proven against a tiny echo upstream of our own (standing in for
the realtime service): a second gateway is started with ``GATEWAY_REALTIME_URL`` pointing
at it. The echo server verifies the token it receives with ``shared.jwt`` against the
gateway's JWKS, exactly as realtime does, and reports what it saw."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect

from gateway.demo import DEMO_ACCOUNTS
from shared.jwt import InvalidTokenError, RemoteJwks, TokenVerifier
from tests.conftest import login
from tests.platform import Platform, Process, free_port

pytestmark = pytest.mark.e2e

ACCOUNTS = {role: (username, password) for role, username, password in DEMO_ACCOUNTS}


class EchoUpstream:
    """Accepts a WebSocket only with a valid gateway token; first sends what it saw
    (claims, query, request id), then echoes frames. ``close:<code>`` makes it close."""

    def __init__(self, jwks_url: str) -> None:
        self.http = httpx.AsyncClient()
        self.verifier = TokenVerifier(
            RemoteJwks(jwks_url, client=self.http, min_refresh_interval=0),
            issuer="bourse",
            audience="bourse-api",
        )
        self.closes: list[int] = []
        self.app = Starlette(routes=[WebSocketRoute("/api/v1/ws/{path:path}", self.handle)])

    async def handle(self, ws: WebSocket) -> None:
        header = ws.headers.get("authorization", "")
        try:
            claims = await self.verifier.verify(header.removeprefix("Bearer "))
        except InvalidTokenError:
            await ws.close(code=4401)
            return
        if "last_alert_id=bad" in ws.url.query:  # what realtime answers a bad cursor
            await ws.send_denial_response(
                JSONResponse(
                    {
                        "error_code": "VALIDATION_ERROR",
                        "message": "The request is not valid.",
                        "details": {"errors": [{"loc": ["query", "last_alert_id"]}]},
                        "timestamp": "2026-01-01T00:00:00Z",
                        "request_id": "r",
                    },
                    status_code=422,
                )
            )
            return
        await ws.accept(subprotocol=(ws.scope.get("subprotocols") or [None])[0])
        await ws.send_text(
            orjson.dumps(
                {
                    "sub": claims.subject,
                    "roles": list(claims.roles),
                    "token_use": claims.token_use,
                    "scopes": list(claims.scopes),
                    "key_id": claims.raw.get("key_id"),
                    "token": header.removeprefix("Bearer "),
                    "path": ws.url.path,
                    "query": ws.url.query,
                    "request_id": ws.headers.get("x-request-id"),
                }
            ).decode()
        )
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    self.closes.append(message.get("code", 1000))
                    return
                text = message.get("text")
                if text is not None and text.startswith("close:"):
                    await ws.close(code=int(text.split(":")[1]), reason="bye")
                    return
                if text is not None:
                    await ws.send_text(text)
                else:
                    await ws.send_bytes(message["bytes"])
        except WebSocketDisconnect as exc:
            self.closes.append(exc.code)


@pytest.fixture(scope="module")
async def echo_gateway(platform: Platform) -> AsyncIterator[tuple[Process, EchoUpstream]]:
    port = free_port()
    gateway = platform.start_extra(
        "gateway", {"GATEWAY_REALTIME_URL": f"http://127.0.0.1:{port}"}, tag="-ws-echo"
    )
    echo = EchoUpstream(gateway.url + "/api/v1/auth/jwks")
    server = uvicorn.Server(
        uvicorn.Config(echo.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    try:
        async with httpx.AsyncClient(base_url=gateway.url) as client:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/live")).status_code == 200 and server.started:
                        break
                await asyncio.sleep(0.05)
        yield gateway, echo
    finally:
        server.should_exit = True
        await task
        await echo.http.aclose()
        gateway.stop()


def ws_url(gateway: Process, path: str) -> str:
    return gateway.url.replace("http://", "ws://") + path


async def token_for(gateway: Process, role: str) -> str:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        headers = await login(client, *ACCOUNTS[role])
    return headers["Authorization"].removeprefix("Bearer ")


async def first_report(ws: Any) -> dict[str, Any]:
    report: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    return report


async def test_bearer_header_relays_frames_and_close_codes(
    echo_gateway: tuple[Process, EchoUpstream],
) -> None:
    gateway, echo = echo_gateway
    token = await token_for(gateway, "viewer")
    request_id = f"ws-{uuid.uuid4().hex}"
    async with connect(
        ws_url(gateway, "/api/v1/ws/prices?tickers=ACME"),
        additional_headers={"Authorization": f"Bearer {token}", "X-Request-ID": request_id},
        subprotocols=["bourse.v1"],  # type: ignore[list-item]
    ) as ws:
        assert ws.subprotocol == "bourse.v1"
        report = await first_report(ws)
        assert report["token"] == token  # the user's own token, as sent
        assert report["roles"] == ["viewer"] and report["token_use"] == "access"
        assert report["path"] == "/api/v1/ws/prices" and report["query"] == "tickers=ACME"
        assert report["request_id"] == request_id
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.send(b"\x00\x01binary")
        assert await ws.recv() == b"\x00\x01binary"
        await ws.close(code=4001, reason="client leaves")
    for _ in range(100):
        if 4001 in echo.closes:
            break
        await asyncio.sleep(0.02)
    assert 4001 in echo.closes  # the client's close code reached the upstream


async def test_a_normal_close_logs_no_warning(
    echo_gateway: tuple[Process, EchoUpstream],
) -> None:
    # Closing a socket is the normal end of a session: it once logged "upstream websocket
    # failed" at WARNING on every close, drowning real failures.
    gateway, echo = echo_gateway
    token = await token_for(gateway, "viewer")
    request_id = f"ws-{uuid.uuid4().hex}"
    for _ in range(3):
        async with connect(
            ws_url(gateway, "/api/v1/ws/prices"),
            additional_headers={"Authorization": f"Bearer {token}", "X-Request-ID": request_id},
        ) as ws:
            await first_report(ws)
            await ws.send("hello")
            assert await ws.recv() == "hello"
    for _ in range(100):
        if echo.closes.count(1000) >= 3:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)  # the gateway's side of the close is logged, if at all, by now
    lines = [line for line in gateway.log_text().splitlines() if request_id in line]
    assert lines, "the gateway logged nothing for these sockets"
    assert not [line for line in lines if '"level":"WARNING"' in line or '"ERROR"' in line]


async def test_query_token_is_stripped_before_the_upstream(
    echo_gateway: tuple[Process, EchoUpstream],
) -> None:
    gateway, _ = echo_gateway
    token = await token_for(gateway, "analyst")
    async with connect(ws_url(gateway, f"/api/v1/ws/alerts?since=5&access_token={token}")) as ws:
        report = await first_report(ws)
        assert report["roles"] == ["analyst"]
        assert report["query"] == "since=5"  # the credential never travels further


async def test_api_key_reaches_upstream_as_an_internal_jwt(
    echo_gateway: tuple[Process, EchoUpstream],
) -> None:
    gateway, _ = echo_gateway
    token = await token_for(gateway, "viewer")
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        auth = {"Authorization": f"Bearer {token}"}
        me = (await client.get("/api/v1/users/me", headers=auth)).json()
        created = await client.post(
            "/api/v1/api-keys", json={"name": "ws-bot", "scopes": ["read"]}, headers=auth
        )
        assert created.status_code == 201, created.text
        key = created.json()
    for params in ({"api_key": key["key"]}, None):
        headers = {} if params else {"X-API-Key": key["key"]}
        query = f"?api_key={key['key']}" if params else ""
        async with connect(
            ws_url(gateway, "/api/v1/ws/prices" + query), additional_headers=headers
        ) as ws:
            report = await first_report(ws)
            assert report["sub"] == me["id"]
            assert report["roles"] == ["viewer"] and report["token_use"] == "access"
            assert report["key_id"] == key["id"] and report["scopes"] == ["read"]
            assert report["token"] != key["key"] and report["query"] == ""


async def test_upstream_close_code_and_reason_reach_the_client(
    echo_gateway: tuple[Process, EchoUpstream],
) -> None:
    gateway, _ = echo_gateway
    token = await token_for(gateway, "viewer")
    async with connect(
        ws_url(gateway, "/api/v1/ws/prices"),
        additional_headers={"Authorization": f"Bearer {token}"},
    ) as ws:
        await first_report(ws)
        await ws.send("close:4000")
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 4000 and ws.close_reason == "bye"


@pytest.mark.parametrize(
    ("path", "headers", "status", "code"),
    [
        ("/api/v1/ws/prices", {}, 401, "UNAUTHENTICATED"),
        ("/api/v1/ws/prices?access_token=a.b.c", {}, 401, "INVALID_TOKEN"),
        ("/api/v1/ws/prices", {"X-API-Key": "bak_nope"}, 401, "INVALID_API_KEY"),
        ("/api/v1/ws/nowhere", {"Authorization": "Bearer x"}, 404, "NOT_FOUND"),
    ],
)
async def test_refused_handshakes_get_an_http_error_in_the_envelope(
    echo_gateway: tuple[Process, EchoUpstream],
    path: str,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    gateway, _ = echo_gateway
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(ws_url(gateway, path), additional_headers=headers):
            pass
    response = refused.value.response
    assert response.status_code == status
    body = orjson.loads(response.body)
    assert body["error_code"] == code
    assert set(body) == {"error_code", "message", "details", "timestamp", "request_id"}


async def test_a_service_refusal_reaches_the_client_with_its_status_and_code(
    echo_gateway: tuple[Process, EchoUpstream],
) -> None:
    gateway, _ = echo_gateway
    token = await token_for(gateway, "viewer")
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(
            ws_url(gateway, "/api/v1/ws/alerts?last_alert_id=bad"),
            additional_headers={"Authorization": f"Bearer {token}"},
        ):
            pass
    response = refused.value.response
    assert response.status_code == 422
    body = orjson.loads(response.body)
    assert body["error_code"] == "VALIDATION_ERROR"
    assert body["details"] == {"errors": [{"loc": ["query", "last_alert_id"]}]}
    assert set(body) == {"error_code", "message", "details", "timestamp", "request_id"}


async def test_a_refused_handshake_is_not_logged_as_an_error(
    echo_gateway: tuple[Process, EchoUpstream],
) -> None:
    gateway, _ = echo_gateway
    before = len(gateway.log_text())
    for headers in ({}, {"Authorization": "Bearer a.b.c"}):
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect(ws_url(gateway, "/api/v1/ws/alerts"), additional_headers=headers):
                pass
        assert refused.value.response.status_code == 401
    await asyncio.sleep(0.3)  # the log is written once per event-loop turn
    logged = gateway.log_text()[before:]
    assert "ERROR" not in logged, logged


async def test_unreachable_realtime_refuses_the_handshake_with_503(platform: Platform) -> None:
    closed = free_port()
    gateway = platform.start_extra(
        "gateway", {"GATEWAY_REALTIME_URL": f"http://127.0.0.1:{closed}"}, tag="-ws-down"
    )
    try:
        async with httpx.AsyncClient(base_url=gateway.url) as client:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/live")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
        token = await token_for(gateway, "viewer")
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect(
                ws_url(gateway, "/api/v1/ws/prices"),
                additional_headers={"Authorization": f"Bearer {token}"},
            ):
                pass
        assert refused.value.response.status_code == 503
        assert orjson.loads(refused.value.response.body)["error_code"] == "SERVICE_UNAVAILABLE"
    finally:
        gateway.stop()
