"""The gateway's edge state: signing key, route table and the forwarding session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import orjson
from fastapi import FastAPI, Request

from gateway.config import GatewaySettings
from gateway.proxy import RouteTable, Upstream, new_session
from shared.jwt import SigningKey, StaticKeys, TokenSigner, TokenVerifier, jwks_document
from shared.runtime import Resources


@dataclass
class Edge:
    signer: TokenSigner
    verifier: TokenVerifier
    jwks_bytes: bytes
    routes: RouteTable
    session: aiohttp.ClientSession


def route_table(settings: GatewaySettings) -> RouteTable:
    market = Upstream("market", settings.market_url)
    recommendations = Upstream("recommendations", settings.recommendations_url)
    portfolio = Upstream("portfolio", settings.portfolio_url)
    realtime = Upstream("realtime", settings.realtime_url)
    return RouteTable(
        {
            "stocks": market,
            "market": market,
            "recommendations": recommendations,
            "portfolio": portfolio,
            "alerts": realtime,
            "ws": realtime,
        }
    )


def edge_extension(settings: GatewaySettings):  # type: ignore[no-untyped-def]
    """The gateway's part of the lifespan: keys and the forwarding session."""

    @asynccontextmanager
    async def extension(app: FastAPI, _: Resources) -> AsyncIterator[None]:
        key = SigningKey.from_file(settings.jwt_private_key_file)
        signer = TokenSigner(
            key,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_seconds=settings.access_token_ttl_seconds,
        )
        verifier = TokenVerifier(
            StaticKeys([key.public_key]), issuer=settings.jwt_issuer, audience=settings.jwt_audience
        )
        session = new_session(settings.upstream_timeout_seconds)
        app.state.token_verifier = verifier
        app.state.edge = Edge(
            signer=signer,
            verifier=verifier,
            jwks_bytes=orjson.dumps(jwks_document([key.public_key])),
            routes=route_table(settings),
            session=session,
        )
        try:
            yield
        finally:
            await session.close()

    return extension


def get_edge(request: Request) -> Edge:
    edge: Edge = request.app.state.edge
    return edge
