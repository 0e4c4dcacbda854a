"""The gateway's edge state, opened and closed by its lifespan: signing and verification
keys, the route policy, the connection pools of each upstream, the authenticator and the rate
limiter with its quotas."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI, Request

from gateway.authn import Authenticator
from gateway.config import GatewaySettings, parse_quota
from gateway.limits import Quota, RateLimiter
from gateway.pipeline.circuit import CircuitBreaker
from gateway.pipeline.forward import Upstream, new_pool, new_session
from gateway.policy import Policy
from shared.jwt import (
    SigningKey,
    StaticKeys,
    TokenSigner,
    TokenVerifier,
    jwks_document,
    load_public_key,
)
from shared.runtime import Resources

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class Edge:
    settings: GatewaySettings
    signer: TokenSigner
    verifier: TokenVerifier
    jwks_bytes: bytes
    policy: Policy
    upstreams: dict[str, Upstream]
    authenticator: Authenticator
    limiter: RateLimiter | None
    quotas: dict[str, Quota]
    trusted_proxies: tuple[Network, ...] = ()
    openapi_cache: dict[str, Any] = field(default_factory=dict)

    def client_ip(self, scope: MutableMapping[str, Any]) -> str | None:
        """The caller's address: the peer, or when the peer is a trusted proxy, the last
        address in ``X-Forwarded-For`` that is not one."""
        client = scope.get("client")
        peer: str | None = client[0] if client else None
        if not self.trusted_proxies or peer is None or not self._trusted(peer):
            return peer
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                text: str = value.decode("latin-1")
                hops = [hop.strip() for hop in text.split(",")]
                for hop in reversed(hops):
                    if hop and not self._trusted(hop):
                        return hop
        return peer

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted_proxies)


def upstreams(settings: GatewaySettings) -> dict[str, Upstream]:
    def make(name: str, url: str) -> Upstream:
        return Upstream(
            name,
            url,
            CircuitBreaker(settings.circuit_failure_threshold, settings.circuit_open_seconds),
        )

    return {
        "market": make("market", settings.market_url),
        "recommendations": make("recommendations", settings.recommendations_url),
        "portfolio": make("portfolio", settings.portfolio_url),
        "realtime": make("realtime", settings.realtime_url),
    }


def quotas(settings: GatewaySettings) -> dict[str, Quota]:
    def quota(name: str, text: str) -> Quota:
        limit, period = parse_quota(text)
        return Quota(name, limit, period)

    return {
        "read": quota("read", settings.rate_limit_read),
        "write": quota("write", settings.rate_limit_write),
        "public": quota("public", settings.rate_limit_public),
        "login-ip": quota("login", settings.rate_limit_login_ip),
        "login-user": quota("login-user", settings.rate_limit_login_user),
    }


def edge_extension(
    settings: GatewaySettings,
) -> Callable[[FastAPI, Resources], AbstractAsyncContextManager[None]]:
    """The gateway's part of the lifespan."""

    @asynccontextmanager
    async def extension(app: FastAPI, resources: Resources) -> AsyncIterator[None]:
        key = SigningKey.from_file(settings.jwt_private_key_file)
        published = [key.public_key]
        published += [load_public_key(path.read_bytes()) for path in settings.jwt_extra_key_files]
        signer = TokenSigner(
            key,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_seconds=settings.access_token_ttl_seconds,
        )
        verifier = TokenVerifier(
            StaticKeys(published),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            cache_size=settings.verified_token_cache_size,
        )
        by_name = upstreams(settings)
        for upstream in by_name.values():
            upstream.pool = new_pool(
                upstream.base_url,
                read_timeout=settings.upstream_timeout_seconds,
                connect_timeout=settings.upstream_connect_timeout_seconds,
                max_connections=settings.upstream_max_connections,
            )
            upstream.session = new_session(
                read_timeout=settings.upstream_timeout_seconds,
                connect_timeout=settings.upstream_connect_timeout_seconds,
                max_connections=settings.upstream_max_connections,
            )
        limiter = (
            RateLimiter(
                settings.redis_url,
                prefix=settings.redis_prefix,
                timeout=settings.rate_limit_redis_timeout_seconds,
            )
            if settings.rate_limit_enabled
            else None
        )
        app.state.token_verifier = verifier
        app.state.edge = Edge(
            settings=settings,
            signer=signer,
            verifier=verifier,
            jwks_bytes=orjson.dumps(jwks_document(published)),
            policy=Policy(),
            upstreams=by_name,
            authenticator=Authenticator(
                verifier=verifier,
                signer=signer,
                pool=resources.pool,
                api_key_cache_seconds=settings.api_key_cache_seconds,
                internal_token_ttl_seconds=settings.internal_token_ttl_seconds,
            ),
            limiter=limiter,
            quotas=quotas(settings),
            trusted_proxies=tuple(
                ipaddress.ip_network(n, strict=False) for n in settings.trusted_proxies
            ),
        )
        try:
            yield
        finally:
            for upstream in by_name.values():
                if upstream.pool is not None:
                    await upstream.pool.close()
                if upstream.session is not None:
                    await upstream.session.close()
            if limiter is not None:
                await limiter.close()

    return extension


def get_edge(request: Request) -> Edge:
    edge: Edge = request.app.state.edge
    return edge
