"""``GET /api/v1/health``: the whole platform at a glance.

200 when the gateway's own dependencies and every service's dependencies are up;
otherwise 503, with ``failing`` naming each part that is down or degraded (``redis``,
``market``, ``market.nats`` ...): the operator's overview, stricter than a part's
``/ready`` (which fails only for what leaves the part nothing to serve).
``rate_limiter`` says whether limits are enforced in Redis (``mode: redis``) or, while
Redis is unreachable, per process (``mode: local``, logins refused); ``circuits`` names
the upstreams whose circuit breaker is open.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson

from gateway.limits import RateLimiter
from gateway.pipeline.forward import Upstream
from shared.health import Check, run_checks

_TIMEOUT = aiohttp.ClientTimeout(total=2.0)


async def _service_ready(upstream: Upstream) -> dict[str, Any]:
    assert upstream.session is not None
    try:
        async with upstream.session.get(upstream.base_url + "/ready", timeout=_TIMEOUT) as response:
            body = await response.read()
            report = orjson.loads(body) if body else {}
            if response.status != 200:
                status = "down"
            else:  # ready, or degraded: serving without a dependency it can do without
                status = "up" if report.get("status", "ready") == "ready" else "degraded"
            return {"status": status, "checks": report.get("checks", {})}
    except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError) as exc:
        return {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:200]}


async def platform_health(
    upstreams: list[Upstream],
    own_checks: dict[str, Check],
    limiter: RateLimiter | None,
) -> tuple[bool, dict[str, Any]]:
    """Check the gateway's dependencies and every upstream's ``/ready``, concurrently."""
    (own_ok, own), services = await asyncio.gather(
        run_checks(own_checks),
        asyncio.gather(*(_service_ready(u) for u in upstreams)),
    )
    by_service = {u.name: result for u, result in zip(upstreams, services, strict=True)}
    failing = [name for name, result in own.items() if result["status"] != "up"]
    for name, result in by_service.items():
        if result["status"] != "up":
            failing.append(name)
            failing.extend(
                f"{name}.{check}"
                for check, outcome in result.get("checks", {}).items()
                if outcome.get("status") != "up"
            )
    ok = own_ok and not failing
    now = time.monotonic()
    if limiter is None:
        limits: dict[str, Any] = {"mode": "disabled"}
    else:
        limits = {"mode": limiter.mode, "logins": "refused" if limiter.mode == "local" else "ok"}
        if limiter.last_error:
            limits["error"] = limiter.last_error
    return ok, {
        "status": "ok" if ok else "degraded",
        "gateway": {"status": "up", "checks": own},
        "services": by_service,
        "failing": failing,
        "rate_limiter": limits,
        "circuits": {u.name: u.breaker.state(now) for u in upstreams},
    }
