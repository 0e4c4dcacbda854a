"""The model's view of each stock (``/stocks/{ticker}/analysis?include_ml=true``): a read
model of the recommendations context's latest live run, kept in market's own schema.

It is fed by that context's run events, never by a read of its schema:

- a durable JetStream consumer of ``recommendations.run.completed`` (shared by market's
  replicas) takes each event as a signal: the event carries only the changed calls, so
  :meth:`ModelViewFeed.refresh` pages the whole latest live run over
  ``recommendations.rpc.latest`` and replaces the read model with it;
- at start-up the same refresh runs once (recommendations may have run before market
  subscribed, or while it was down), retried until recommendations answers.

Replacing is atomic and ordered (:func:`repository.model_view.replace_if_newer`): one
transaction swaps the run and all its calls, and only a newer run replaces the one held.
That ordering is what makes the consumer idempotent: a redelivered event, the second part
of a run, an event of a run older than the one held or the same run refreshed by another
replica all find the read model at that run or past it and change nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from services.market.domain.model_view import HeldRun, ModelCall, RunStamp
from services.market.recommendation_inputs import (
    LATEST_RPC,
    PAGE,
    RUN_COMPLETED,
    LatestCall,
    LatestReply,
    LatestRequest,
    RunCompleted,
)
from services.market.repository import model_view as repository
from shared.messaging import Bus, Delivered, Event, StreamAttachment

logger = logging.getLogger("services.market.model_view")

MAX_PAGES = 200  # 40,000 calls: far beyond any universe; more is a cursor that never ends
MAX_RETRY_SECONDS = 60.0


class RunWalkError(Exception):
    """The latest run could not be read whole and consistent (nothing was written)."""


def model_call(call: LatestCall) -> ModelCall:
    return ModelCall(
        ticker=call.ticker,
        recommendation_id=call.id,
        action=call.action,
        confidence=call.confidence,
        score=call.score,
        target_price=call.target_price,
        price_at_call=call.price_at_call,
        horizon_days=call.horizon_days,
        factors=[f.model_dump() for f in call.factors],
        thesis=call.thesis,
        risk_factors=call.risk_factors,
        methodology_disclosure=call.methodology_disclosure,
        data_sources=call.data_sources,
    )


class ModelViewFeed:
    """Keeps the read model on the latest live run (see the module docstring).
    ``on_replaced`` runs after each replacement is committed (the response cache's
    invalidation)."""

    CONSUMER = "market-model-view"

    def __init__(
        self,
        pool: asyncpg.Pool,
        bus: Bus,
        *,
        stream: str,
        on_replaced: Callable[[], Awaitable[None]],
        retry_seconds: float = 5.0,
        request_timeout: float = 10.0,
        page: int = PAGE,
    ) -> None:
        self._pool = pool
        self._bus = bus
        self._on_replaced = on_replaced
        self._retry = retry_seconds
        self._timeout = request_timeout
        self._page = page
        self._lock = asyncio.Lock()  # one walk at a time in this process
        self._attachment = StreamAttachment(
            bus,
            stream,
            self.CONSUMER,
            RUN_COMPLETED,
            Event[RunCompleted],
            self.handle,
            retry_seconds=retry_seconds,
            # A walk of a whole run takes seconds; while recommendations does not answer,
            # keep trying for ~20 minutes (delays doubling to 5 minutes).
            ack_wait=120.0,
            max_deliver=12,
        )
        self._refresh: asyncio.Task[None] | None = None
        self.initial_refresh_done = asyncio.Event()

    async def start(self) -> None:
        await self._attachment.start()
        self._refresh = asyncio.create_task(self._initial_refresh(), name="model-view-refresh")

    async def stop(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh
        await self._attachment.stop()

    @property
    def attached(self) -> bool:
        return self._attachment.attached

    async def _initial_refresh(self) -> None:
        delay = self._retry
        while True:
            try:
                held = await self.refresh()
            except Exception as exc:  # recommendations not up yet, or a lost connection
                logger.info("latest recommendation run not read (retry in %.0fs): %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_SECONDS)
                continue
            logger.info(
                "model view at start-up: %s",
                f"run {held.stamp.run_id} of {held.stamp.as_of}" if held else "no live run yet",
            )
            self.initial_refresh_done.set()
            return

    async def handle(self, event: Event[RunCompleted], _: Delivered) -> None:
        """Bring the read model to this event's run (or a newer one). Raises, so the event
        is redelivered later, when recommendations does not answer with that run yet."""
        run = event.data
        stamp = RunStamp(run.run_id, run.as_of, run.generated_at)
        if not stamp.supersedes(await self._held_stamp()):
            return  # this run or a newer one is held already
        held = await self.refresh(expected=run)
        if stamp.supersedes(held.stamp if held is not None else None):
            raise RunWalkError(f"recommendations does not answer run {run.run_id} yet")

    async def refresh(self, expected: RunCompleted | None = None) -> HeldRun | None:
        """Read the latest live run whole and, if it is newer than the one held, replace
        the read model with it. Returns the run held afterwards. ``expected``: the event
        that asked, whose call count the walk of the same run must match."""
        async with self._lock:
            first = await self._latest(None)
            if first.run_id is None:
                return await self._held()
            if first.as_of is None or first.generated_at is None or first.model_version is None:
                raise RunWalkError(f"run {first.run_id} came without its date or model version")
            stamp = RunStamp(first.run_id, first.as_of, first.generated_at)
            if not stamp.supersedes(await self._held_stamp()):
                return await self._held()
            calls = list(first.calls)
            cursor, pages = first.next_cursor, 1
            while cursor is not None:
                if pages >= MAX_PAGES:
                    raise RunWalkError(f"run {first.run_id} still paging after {pages} pages")
                reply = await self._latest(cursor)
                if reply.run_id != first.run_id:
                    raise RunWalkError(f"a walk of run {first.run_id} answered {reply.run_id}")
                calls.extend(reply.calls)
                cursor, pages = reply.next_cursor, pages + 1
            if (
                expected is not None
                and expected.run_id == first.run_id
                and len(calls) != expected.total_recommendations
            ):
                raise RunWalkError(
                    f"run {first.run_id} has {expected.total_recommendations} calls;"
                    f" the walk read {len(calls)}"
                )
            async with self._pool.acquire() as conn, conn.transaction():
                replaced = await repository.replace_if_newer(
                    conn, stamp, first.model_version, [model_call(c) for c in calls]
                )
            if replaced:
                logger.info(
                    "model view replaced by run %s of %s: %d calls in %d pages",
                    first.run_id,
                    first.as_of,
                    len(calls),
                    pages,
                )
                await self._on_replaced()
            return await self._held()

    async def _latest(self, cursor: str | None) -> LatestReply:
        return await self._bus.request(
            LATEST_RPC,
            LatestRequest(cursor=cursor, limit=self._page),
            LatestReply,
            timeout=self._timeout,
        )

    async def _held(self) -> HeldRun | None:
        async with self._pool.acquire() as conn:
            return await repository.held_run(conn)

    async def _held_stamp(self) -> RunStamp | None:
        held = await self._held()
        return held.stamp if held is not None else None
