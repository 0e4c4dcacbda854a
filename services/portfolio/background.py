"""Background work of the portfolio service: forgetting expired idempotency keys.

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
