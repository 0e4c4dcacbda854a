"""Liveness, readiness, and the log of dependency outages.

``GET /live``  -- 200 while the process can answer at all (no dependency is checked).
``GET /ready`` -- whether this replica should receive traffic. Every dependency is checked
(with a timeout) and reported, but only the part's *required* ones
(``app.state.readiness_required``) make it 503: those without which the part can serve
nothing. A dependency some routes can do without (a cache, the message bus) is reported
as ``degraded`` with a 200 -- taking every replica out of rotation for it would turn a
partial outage into a total one. Checks are registered on ``app.state.readiness_checks``
by the part's lifespan, once its pool and connections exist; which parts require what is
in docs/architecture.md ("Health").

:class:`Outages` turns requests refused for a lost dependency into one WARNING when the
outage starts and one line when the dependency answers again, however many requests were
refused in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

Check = Callable[[], Awaitable[object]]

logger = logging.getLogger("shared.health")


@dataclass
class _Episode:
    started: float
    last_failure: float
    reason: str
    refused: int = 1
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)


class Outages:
    """One outage episode per dependency: a WARNING when requests start being refused
    because of it, one line when it is back, nothing per request in between.

    The episode ends when the dependency's readiness check passes again (tried every
    ``probe_interval`` seconds); a dependency without a check (an upstream part) ends its
    episode after ``quiet_seconds`` without a refused request.
    """

    def __init__(
        self,
        checks: Callable[[], Mapping[str, Check]],
        *,
        probe_interval: float = 1.0,
        probe_timeout: float = 2.0,
        quiet_seconds: float = 5.0,
    ) -> None:
        self._checks = checks
        self._probe_interval = probe_interval
        self._probe_timeout = probe_timeout
        self._quiet = quiet_seconds
        self._episodes: dict[str, _Episode] = {}

    def down(self) -> list[str]:
        """The dependencies in an outage now."""
        return sorted(self._episodes)

    def failed(self, dependency: str, reason: str) -> None:
        """A request was refused because ``dependency`` is unavailable."""
        now = time.monotonic()
        episode = self._episodes.get(dependency)
        if episode is not None:
            episode.refused += 1
            episode.last_failure = now
            return
        logger.warning(
            "%s unavailable (%s): answering 503 with Retry-After until it is back",
            dependency,
            reason,
            extra={"dependency": dependency},
        )
        episode = _Episode(started=now, last_failure=now, reason=reason)
        self._episodes[dependency] = episode
        try:
            episode.watcher = asyncio.get_running_loop().create_task(
                self._watch(dependency), name=f"outage:{dependency}"
            )
        except RuntimeError:  # no loop (a synchronous caller): the next failure retries
            del self._episodes[dependency]

    async def _watch(self, dependency: str) -> None:
        while True:
            await asyncio.sleep(self._probe_interval)
            episode = self._episodes[dependency]
            check = self._checks().get(dependency)
            if check is None:
                if time.monotonic() - episode.last_failure >= self._quiet:
                    break
                continue
            try:
                await asyncio.wait_for(check(), self._probe_timeout)
            except Exception:  # still down: a failed probe is the expected answer
                continue
            break
        episode = self._episodes.pop(dependency)
        logger.info(
            "%s is back after %.1fs; %d request(s) were answered 503 meanwhile",
            dependency,
            time.monotonic() - episode.started,
            episode.refused,
            extra={"dependency": dependency},
        )

    async def close(self) -> None:
        """Stop watching (at shutdown)."""
        tasks = [e.watcher for e in self._episodes.values() if e.watcher is not None]
        self._episodes.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


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
        required: Collection[str] = getattr(request.app.state, "readiness_required", checks)
        _, results = await run_checks(checks)
        for name, result in results.items():
            result["required"] = name in required
        down = sorted(name for name, result in results.items() if result["status"] != "up")
        failing = [name for name in down if name in required]
        status = "not_ready" if failing else "degraded" if down else "ready"
        body = {"status": status, "checks": results, "down": down}
        return Response(
            orjson.dumps(body), status_code=503 if failing else 200, media_type="application/json"
        )

    return router
