"""The edge's behaviour around forwarding: security headers, CORS, gzip, body limits,
path normalisation tricks, the circuit breaker, and refusing a dangerous configuration."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.tests.e2e import assert_envelope, new_user, wait_live
from tests.platform import Platform, free_port

pytestmark = pytest.mark.e2e


async def test_security_headers_and_gzip(gateway: httpx.AsyncClient) -> None:
    user = await new_user(gateway)
    response = await gateway.get(
        "/api/v1/stocks", params={"limit": 100}, headers={**user.headers, "Accept-Encoding": "gzip"}
    )
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"  # httpx decoded it for us
    assert response.json()["items"]
    for answer in (response, await gateway.get("/api/v1/stocks")):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in answer.headers["content-security-policy"]
    small = await gateway.get(
        "/api/v1/users/me", headers={**user.headers, "Accept-Encoding": "gzip"}
    )
    assert "content-encoding" not in small.headers  # not worth compressing


def raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


async def test_dot_segments_cannot_reach_another_route(platform: Platform) -> None:
    port = platform.processes["gateway"].port
    for path in (b"/api/v1/stocks/../users", b"/api/v1/stocks/./ACME", b"/api/v1//users"):
        answer = await asyncio.to_thread(
            raw_request,
            port,
            b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.1 404"), (path, answer[:200])


async def test_bodies_over_the_limit_are_refused(platform: Platform) -> None:
    process = platform.start_extra(
        "gateway", {"GATEWAY_MAX_BODY_BYTES": "2048"}, tag="-small-bodies"
    )
    try:
        await wait_live(process)
        async with httpx.AsyncClient(base_url=process.url, timeout=10) as client:
            user = await new_user(client)
            big = {"name": "x" * 4000}
            forwarded = await client.post("/api/v1/portfolio", json=big, headers=user.headers)
            assert_envelope(forwarded, 413, "PAYLOAD_TOO_LARGE")
            own = await client.post("/api/v1/api-keys", json=big, headers=user.headers)
            assert_envelope(own, 413, "PAYLOAD_TOO_LARGE")

            async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
                for _ in range(8):
                    yield b"x" * 1024

            streamed = await client.post(
                "/api/v1/portfolio",
                content=chunks(),
                headers={**user.headers, "Content-Type": "application/json"},
            )
            assert_envelope(streamed, 413, "PAYLOAD_TOO_LARGE")
            own_streamed = await client.post(  # the gateway's own route: 413, not 400
                "/api/v1/api-keys",
                content=chunks(),
                headers={**user.headers, "Content-Type": "application/json"},
            )
            assert_envelope(own_streamed, 413, "PAYLOAD_TOO_LARGE")
            fine = await client.post(
                "/api/v1/portfolio", json={"name": "small-enough"}, headers=user.headers
            )
            assert fine.status_code == 201, fine.text
    finally:
        process.stop()


async def test_cors_from_configuration(platform: Platform) -> None:
    origin = "https://app.example.com"
    process = platform.start_extra("gateway", {"GATEWAY_CORS_ORIGINS": origin}, tag="-cors")
    try:
        await wait_live(process)
        async with httpx.AsyncClient(base_url=process.url) as client:
            preflight = await client.options(
                "/api/v1/stocks",
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "authorization",
                },
            )
            assert preflight.status_code == 200
            assert preflight.headers["access-control-allow-origin"] == origin
            assert "access-control-allow-credentials" not in preflight.headers
            stranger = await client.get(
                "/api/v1/health", headers={"Origin": "https://evil.example"}
            )
            assert "access-control-allow-origin" not in stranger.headers
            # A browser may read what portfolio's writes answer with (ETag for If-Match,
            # Idempotent-Replayed) and the limits.
            simple = await client.get("/api/v1/health", headers={"Origin": origin})
            exposed = {
                h.strip().lower()
                for h in simple.headers["access-control-expose-headers"].split(",")
            }
            assert {"etag", "idempotent-replayed", "retry-after", "x-request-id"} <= exposed
    finally:
        process.stop()


async def test_wildcard_origin_with_credentials_refuses_to_start(platform: Platform) -> None:
    process = platform.start_extra(
        "gateway",
        {"GATEWAY_CORS_ORIGINS": "*", "GATEWAY_CORS_ALLOW_CREDENTIALS": "true"},
        tag="-cors-wildcard",
    )
    code = await asyncio.to_thread(process.popen.wait, 30)
    assert code == 2
    assert "GATEWAY_CORS_ALLOW_CREDENTIALS" in process.log_text()


async def test_circuit_opens_on_a_dead_service_and_says_so(
    gateway: httpx.AsyncClient, platform: Platform
) -> None:
    user = await new_user(gateway)
    process = platform.start_extra(
        "gateway",
        {
            "GATEWAY_MARKET_URL": f"http://127.0.0.1:{free_port()}",
            "GATEWAY_CIRCUIT_FAILURE_THRESHOLD": "3",
            "GATEWAY_CIRCUIT_OPEN_SECONDS": "30",
        },
        tag="-dead-market",
    )
    try:
        await wait_live(process)
        async with httpx.AsyncClient(base_url=process.url, timeout=10) as client:
            for _ in range(3):
                down = await client.get("/api/v1/stocks", headers=user.headers)
                body = assert_envelope(down, 503, "SERVICE_UNAVAILABLE")
                assert body["details"] == {"service": "market", "dependency": "market"}
                assert int(down.headers["retry-after"]) > 0
            opened = await client.get("/api/v1/stocks", headers=user.headers)
            body = assert_envelope(opened, 503, "SERVICE_UNAVAILABLE")
            assert body["details"] == {
                "service": "market",
                "dependency": "market",
                "circuit": "open",
            }
            assert 1 <= int(opened.headers["retry-after"]) <= 30
            # Other services are unaffected.
            assert (await client.get("/api/v1/alerts", headers=user.headers)).status_code == 200
            health = (await client.get("/api/v1/health")).json()
            assert health["circuits"]["market"] == "open"
            assert "market" in health["failing"]
    finally:
        process.stop()


async def test_forwarded_answers_carry_ids_and_are_measured_by_template(
    gateway: httpx.AsyncClient,
) -> None:
    user = await new_user(gateway)
    response = await gateway.get(
        "/api/v1/stocks/ACME", headers={**user.headers, "X-Request-ID": "front-check-1"}
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "front-check-1"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["ratelimit-policy"].startswith('"read"')
    fresh = await gateway.get("/api/v1/stocks/ACME", headers=user.headers)
    assert len(fresh.headers["x-request-id"]) == 32
    metrics = (await gateway.get("/metrics")).text
    assert 'route="/api/v1/stocks/{ticker}"' in metrics


def _answer(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (
            b"GET /api/v1/stocks HTTP/1.1\r\nhost: x\r\nx-big: "
            + b"a" * (4 * 1024 * 1024)
            + b"\r\n\r\n",
            431,
            "REQUEST_HEADERS_TOO_LARGE",
        ),
        (
            b"GET /api/v1/stocks HTTP/1.1\r\nhost: x\r\n"
            + b"".join(b"x-h%d: 1\r\n" % i for i in range(20_000))
            + b"\r\n",
            431,
            "REQUEST_HEADERS_TOO_LARGE",
        ),
        (
            b"GET /api/v1/stocks?q=" + b"x" * 9000 + b" HTTP/1.1\r\nhost: x\r\n\r\n",
            414,
            "URI_TOO_LONG",
        ),
        (b"BREW /api/v1/stocks HTTP/1.1\r\nhost: x\r\n\r\n", 501, "METHOD_NOT_IMPLEMENTED"),
        (b"GET /api/v1/stocks HTTP/1.1\r\nno colon\r\n\r\n", 400, "MALFORMED_REQUEST"),
    ],
    ids=["4MB-header", "20000-headers", "long-target", "unknown-method", "malformed"],
)
async def test_heads_out_of_bounds_are_refused_in_the_envelope(
    platform: Platform, request_bytes: bytes, status: int, code: str
) -> None:
    port = platform.processes["gateway"].port
    raw = await asyncio.to_thread(raw_request, port, request_bytes)
    got, headers, body = _answer(raw)
    assert got == status, raw[:300]
    assert headers["content-type"] == "application/json"
    document = json.loads(body)
    assert set(document) == {"error_code", "message", "details", "timestamp", "request_id"}
    assert document["error_code"] == code


async def test_head_is_served_on_get_routes(gateway: httpx.AsyncClient) -> None:
    user = await new_user(gateway)
    for path in ("/api/v1/stocks/ACME", "/api/v1/alerts", "/api/v1/users/me", "/api/v1/health"):
        got = await gateway.get(path, headers=user.headers)
        head = await gateway.head(path, headers=user.headers)
        assert head.status_code == got.status_code == 200, (path, head.status_code)
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]


@pytest.mark.parametrize("method", ["PATCH", "DELETE", "PUT"])
async def test_a_literal_path_is_not_a_parameter_at_the_gateway_and_the_service(
    platform: Platform, gateway: httpx.AsyncClient, method: str
) -> None:
    user = await new_user(gateway)
    realtime = platform.processes["realtime"].url
    async with httpx.AsyncClient(base_url=realtime, timeout=10) as service:
        for client in (gateway, service):  # the gateway's policy, then realtime's routing
            answer = await client.request(method, "/api/v1/alerts/history", headers=user.headers)
            assert_envelope(answer, 405, "METHOD_NOT_ALLOWED")
            assert answer.headers["allow"] == "GET, HEAD"
