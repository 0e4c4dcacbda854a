"""Liveness and readiness.

``GET /live``  -- 200 while the process can answer at all (no dependency is checked).
``GET /ready`` -- 200 when every dependency check passes within its timeout, else 503
naming the failing ones. Checks are registered on ``app.state.readiness_checks`` by the
part's lifespan, once its pool and connections exist.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

Check = Callable[[], Awaitable[object]]


async def _run_one(check: Check, timeout: float) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), timeout)
    except TimeoutError:
        return {"status": "down", "error": f"no answer within {timeout:g}s"}
    except Exception as exc:  # a failed check is a result, not an error of ours
        return {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:200]}
    return {"status": "up", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


async def run_checks(
    checks: Mapping[str, Check], *, timeout: float = 2.0
) -> tuple[bool, dict[str, dict[str, Any]]]:
    """Run ``checks`` concurrently; return whether all passed and each one's result."""
    names = list(checks)
    results = await asyncio.gather(*(_run_one(checks[name], timeout) for name in names))
    by_name = dict(zip(names, results, strict=True))
    return all(r["status"] == "up" for r in results), by_name


def health_router() -> APIRouter:
    """The ``/live`` and ``/ready`` routes (outside the public API prefix)."""
    router = APIRouter(tags=["health"], include_in_schema=False)

    @router.get("/live")
    async def live() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @router.get("/ready")
    async def ready(request: Request) -> Response:
        checks: Mapping[str, Check] = getattr(request.app.state, "readiness_checks", {})
        ok, results = await run_checks(checks)
        body = {"status": "ready" if ok else "not_ready", "checks": results}
        return Response(
            orjson.dumps(body), status_code=200 if ok else 503, media_type="application/json"
        )

    return router
