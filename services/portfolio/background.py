"""Background work of the portfolio service: forgetting expired idempotency keys, and
warming the optimiser once at start-up (:func:`optimiser_warm_up`).

A key is honoured for 24 hours (a claim treats an older row as free, so expiry never
depends on this task); this only keeps the table from growing, in small batches so it
never holds locks for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.portfolio import repository
from services.portfolio.domain import optimise
from services.portfolio.service import IDEMPOTENCY_TTL_SECONDS
from shared.db.transaction import BACKGROUND_CONNECTION_ERRORS, acquire
from shared.runtime import Extension, Resources

logger = logging.getLogger("services.portfolio.background")

BATCH = 5_000


def idempotency_janitor(interval_seconds: float = 600.0) -> Extension:
    """An extension that deletes expired idempotency keys every ``interval_seconds``."""

    @asynccontextmanager
    async def run(_: FastAPI, resources: Resources) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                try:
                    timeout = resources.db_acquire_timeout
                    async with acquire(resources.pool, timeout=timeout) as conn:
                        forgotten = BATCH
                        while forgotten == BATCH:
                            forgotten = await repository.forget_expired_keys(
                                conn, IDEMPOTENCY_TTL_SECONDS, BATCH
                            )
                except BACKGROUND_CONNECTION_ERRORS as exc:  # the database away: next round
                    logger.warning("forgetting expired idempotency keys: %s", exc)
                except Exception:  # the next round retries; a janitor must not die
                    logger.exception("forgetting expired idempotency keys failed")
                await asyncio.sleep(interval_seconds)

        task = asyncio.create_task(loop(), name="portfolio-idempotency-janitor")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return run


def optimiser_warm_up() -> Extension:
    """Warm the optimiser in a worker thread after start-up; start-up does not wait for it,
    and a proposal asked for meanwhile simply pays the import itself."""

    @asynccontextmanager
    async def extension(app: FastAPI, resources: Resources) -> AsyncIterator[None]:
        async def warm() -> None:
            try:
                await asyncio.to_thread(optimise.warm)
            except Exception:  # a warm-up must never take the service down
                logger.warning("the optimiser's warm-up failed", exc_info=True)

        task = asyncio.create_task(warm())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return extension
