"""A part's app run in this process, for route tests: its real lifespan (pool, Redis,
NATS, migrations, background work) on the test session's infrastructure, called through
httpx's ASGI transport, no sockets and no subprocesses.

The one thing replaced is identity, as polar's and the FastAPI template's route tests do:
a service trusts tokens signed by a key the test holds (:attr:`InProcessApp.token`)
instead of fetching the gateway's JWKS. The gateway itself signs with a key file the
test writes. Everything else -- PostgreSQL, Redis, NATS -- is the real server.

Five-process tests (``tests/platform.py``) stay for flows that cross services.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from bourse.environment import part_environment
from bourse.parts import BY_NAME
from shared.jwt import SigningKey, StaticKeys, TokenSigner, TokenVerifier
from shared.settings import BaseServiceSettings
from tests.infra import TestInfra

_SETTINGS_CLASSES = {
    "gateway": ("gateway.config", "GatewaySettings"),
    "market": ("services.market.config", "MarketSettings"),
    "recommendations": ("services.recommendations.config", "RecommendationsSettings"),
    "portfolio": ("services.portfolio.config", "PortfolioSettings"),
    "realtime": ("services.realtime.config", "RealtimeSettings"),
}


@dataclass
class InProcessApp:
    """A running part and a client for it; :meth:`token` signs a caller's access token."""

    app: FastAPI
    client: httpx.AsyncClient
    settings: BaseServiceSettings
    signer: TokenSigner

    def token(self, role: str = "viewer", subject: str | None = None) -> dict[str, str]:
        """Authorization headers for a caller with ``role`` (a fresh user unless given)."""
        token = self.signer.issue(subject or str(uuid.uuid4()), [role])
        return {"Authorization": f"Bearer {token}"}


def part_settings(
    name: str,
    infra: TestInfra,
    work: Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    database: str | None = None,
) -> BaseServiceSettings:
    """``name``'s settings for the test session's infrastructure, as ``bourse up`` would
    give them (through :func:`bourse.environment.part_environment`), with ``overrides``
    (field names, not variables) applied on top; on ``database`` instead of the session's
    (a test module that writes what other tests read keeps a database of its own)."""
    part = BY_NAME[name]
    key_file = work / "jwt-signing.pem"
    if not key_file.exists():
        key_file.write_bytes(SigningKey.generate().to_pem())
        key_file.chmod(0o600)
    env = part_environment(
        part,
        infra,
        database=database or infra.database,
        redis_prefix=infra.redis_prefix,
        nats_prefix=infra.nats_prefix,
        signing_key=key_file,
    )
    prefix = f"{part.env_prefix}_"
    fields: dict[str, Any] = {k[len(prefix) :].lower(): v for k, v in env.items()}
    if name == "portfolio":
        # The warm-up thread imports scikit-learn, whose warnings.catch_warnings() (not
        # thread-safe: it swaps the process's filters) races FastAPI's own suppression when
        # the next test builds an app, so pydantic warnings surface as test errors. One app
        # per process in production; here, off unless a test asks for it.
        fields["optimiser_warm_up"] = False
    fields.update(overrides or {})
    module, cls_name = _SETTINGS_CLASSES[name]
    settings_cls = getattr(importlib.import_module(module), cls_name)
    settings: BaseServiceSettings = settings_cls(**fields)
    return settings


@asynccontextmanager
async def running_app(
    name: str, infra: TestInfra, work: Path, *, database: str | None = None, **overrides: Any
) -> AsyncIterator[InProcessApp]:
    """Part ``name`` started in this process (lifespan entered), with a client bound to it."""
    settings = part_settings(name, infra, work, overrides, database=database)
    module = importlib.import_module(f"{BY_NAME[name].module}.app")
    app: FastAPI = module.create_app(settings)
    key = SigningKey.generate()
    signer = TokenSigner(key, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    async with app.router.lifespan_context(app):
        if not BY_NAME[name].is_gateway:
            # Identity is the gateway's: here, the test's key stands in for its JWKS.
            app.state.token_verifier = TokenVerifier(
                StaticKeys([key.public_key]),
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
            )
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", timeout=30.0
        ) as client:
            yield InProcessApp(app=app, client=client, settings=settings, signer=signer)
