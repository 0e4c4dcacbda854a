"""Step 3: the rate limit (:mod:`gateway.limits`: GCRA in Redis, one round trip). The
caller's bucket of the route's class, or the client IP's ``public`` bucket for anonymous
calls, failed authentications and unknown routes; refused: 429 with ``Retry-After``.
Every answer carries ``RateLimit-Policy`` and ``RateLimit``: the decision's headers are
appended to ``headers_out`` as soon as they are known."""

from __future__ import annotations

from typing import Any

from gateway.authn import Principal
from gateway.edge import Edge
from gateway.limits import Decision
from gateway.policy import Rule
from shared.errors import RateLimitedError

Headers = list[tuple[bytes, bytes]]


async def charge(
    edge: Edge, rule: Rule, principal: Principal | None, client_ip: str | None, headers_out: Headers
) -> None:
    """Charge the request to its bucket; raises the 429. The login route charges its
    failures itself (per address and per username)."""
    if rule.rate_class == "login":
        return
    await _check(edge, rule.rate_class, principal, client_ip, headers_out)


async def charge_anonymous(edge: Edge, client_ip: str | None, headers_out: Headers) -> None:
    """Charge the client IP's ``public`` bucket; raises the 429."""
    await _check(edge, "public", None, client_ip, headers_out)


async def _check(
    edge: Edge,
    rule_class: str,
    principal: Principal | None,
    client_ip: str | None,
    headers_out: Headers,
) -> None:
    limiter = edge.limiter
    if limiter is None:
        return
    if principal is None or rule_class == "public":
        quota = edge.quotas["public"]
        key = limiter.key("public", "ip", client_ip or "unknown")
    else:
        quota = edge.quotas[rule_class]
        key = limiter.key(rule_class, principal.rate_key)
    decision = await limiter.check([key], [quota])
    headers_out.extend(decision.headers)
    if not decision.allowed:
        raise RateLimitedError(details=_details(decision))


def _details(decision: Decision) -> dict[str, Any]:
    return {
        "policy": decision.quota.name,
        "limit": decision.quota.limit,
        "window_seconds": decision.quota.period_seconds,
        "retry_after_seconds": decision.retry_after_seconds,
    }
