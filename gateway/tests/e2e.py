"""Helpers for the gateway's end-to-end tests in ``tests/test_gateway_*.py``,
``tests/test_security_*.py`` and ``tests/test_role_matrix.py``: plain async functions,
no hidden state. Users are made fresh per test through the admin API, so no test depends
on another's buckets, sessions or keys."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.demo import DEMO_ACCOUNTS
from tests.platform import Process

ACCOUNTS = {role: (username, password) for role, username, password in DEMO_ACCOUNTS}
ENVELOPE_KEYS = {"error_code", "message", "details", "timestamp", "request_id"}


@dataclass(frozen=True)
class TestUser:
    __test__ = False

    id: str
    username: str
    password: str
    role: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def assert_envelope(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == ENVELOPE_KEYS, body
    if code is not None:
        assert body["error_code"] == code, body
    return body


async def token_pair(client: httpx.AsyncClient, username: str, password: str) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/auth/token", data={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def admin_headers(client: httpx.AsyncClient) -> dict[str, str]:
    pair = await token_pair(client, *ACCOUNTS["admin"])
    return {"Authorization": f"Bearer {pair['access_token']}"}


async def new_user(
    client: httpx.AsyncClient, role: str = "viewer", *, admin: dict[str, str] | None = None
) -> TestUser:
    """A fresh user of ``role``, created by the demo admin, and logged in."""
    admin = admin or await admin_headers(client)
    username = f"t-{role}-{uuid.uuid4().hex[:10]}"
    password = f"pw-{uuid.uuid4().hex}"
    created = await client.post(
        "/api/v1/users",
        json={"username": username, "password": password, "role": role},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    pair = await token_pair(client, username, password)
    return TestUser(
        id=created.json()["id"],
        username=username,
        password=password,
        role=role,
        access_token=pair["access_token"],
        refresh_token=pair["refresh_token"],
    )


async def wait_live(process: Process, timeout: float = 30.0) -> None:
    """Until ``process`` answers ``/live`` (``/ready`` may be down on purpose)."""
    async with httpx.AsyncClient(base_url=process.url, timeout=2.0) as client:
        for _ in range(int(timeout / 0.05)):
            if process.popen.poll() is not None:
                raise RuntimeError(f"exited with {process.popen.returncode}:\n{process.log_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/live")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"not live after {timeout}s:\n{process.log_text()[-2000:]}")
