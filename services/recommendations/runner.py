"""Runs: inputs from market, the model off the event loop, the ledger in one transaction.

Background work, not a request: the runner takes its connections from the pool itself.
Three things start a run, all idempotent per trading day (the ``runs`` unique index):

- ``market.eod.completed`` (durable consumer ``recommendations-eod-runs`` on market's
  stream, shared by every replica): a scheduled run as of that session;
- ``recommendations.run.requested`` (our own stream, written by ``POST /runs``): the queued
  on-demand run, as of the day asked or the latest session with data;
- start-up: when the latest session with data has no live run yet (a fresh install, or a
  service that was down at the close), a scheduled run catches up, so today's calls exist
  without anyone asking.

A redelivered event or a second replica finds the day's run and does nothing; a run that
fails is recorded as failed (with its error and timings) and leaves the day open for retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.recommendations import events, repository, service
from services.recommendations.domain import publication, track_record
from services.recommendations.domain import spec as s
from services.recommendations.domain.calibration import Calibration, fit_calibration
from services.recommendations.domain.factors import Panel
from services.recommendations.domain.inputs import month_ends
from services.recommendations.domain.model import Call
from services.recommendations.market_inputs import (
    EOD_COMPLETED,
    EOD_STREAM,
    EodCompleted,
    MarketInputs,
)
from shared.db.transaction import BACKGROUND_CONNECTION_ERRORS, acquire
from shared.errors import AppError
from shared.messaging import Bus, Consumer, Delivered, Event


def _outage(exc: Exception) -> bool:
    """Whether ``exc`` is market, NATS or the database away (a 503 of ours or market's
    over NATS, a lost connection): what pauses the backfill rather than ending it."""
    if isinstance(exc, BACKGROUND_CONNECTION_ERRORS):
        return True
    return isinstance(exc, AppError) and exc.status_code == 503


logger = logging.getLogger("services.recommendations.runner")

# Sessions of history a run asks for, in calendar days (260 sessions is about 378).
CALENDAR_DAYS = 400


class Runner:
    EOD_CONSUMER = "recommendations-eod-runs"
    REQUEST_CONSUMER = "recommendations-requested-runs"

    def __init__(
        self,
        pool: asyncpg.Pool,
        bus: Bus,
        inputs: MarketInputs,
        *,
        spec: s.ModelSpec = s.CURRENT,
        acquire_timeout: float = 30.0,
        on_published: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._pool = pool
        self._bus = bus
        self._inputs = inputs
        self._spec = spec
        self._acquire_timeout = acquire_timeout
        self._lock = asyncio.Lock()  # one run at a time in this process
        self._on_published = on_published

    async def run(
        self,
        *,
        kind: str,
        trading_day: date | None = None,
        run_id: UUID | None = None,
        requested_by: str | None = None,
        trigger_event: UUID | None = None,
        queued: bool = False,
    ) -> service.Published | None:
        """One run; None when its trading day already has one. Raises after recording a
        failed run when the inputs or the model fail."""
        run_id = run_id or uuid.uuid4()
        async with self._lock:
            if trading_day is not None and not queued and await self._day_taken(trading_day):
                return None
            timings: dict[str, float] = {}
            started = time.perf_counter()
            try:
                panel, report = await self._inputs.panel(
                    end=trading_day or datetime.now(UTC).date(), calendar_days=CALENDAR_DAYS
                )
                timings.update({f"inputs_{k}": v for k, v in report.seconds.items()})
                as_of = trading_day or panel.sessions[-1].astype(object)
                calibration = await self._calibration(matured_by=as_of)
                mark = time.perf_counter()
                calls = await asyncio.to_thread(
                    publication.calls_for_ledger, panel, as_of, self._spec, calibration
                )
                timings["model"] = round(time.perf_counter() - mark, 3)
                mark = time.perf_counter()
                async with (
                    acquire(self._pool, timeout=self._acquire_timeout) as conn,
                    conn.transaction(),
                ):
                    published = await service.publish_run(
                        conn,
                        run_id=run_id,
                        kind=kind,
                        calls=calls,
                        calibration=calibration,
                        model_version=self._spec.version,
                        universe=len(panel.tickers),
                        requested_by=requested_by,
                        trigger_event=trigger_event,
                        timings=timings,
                        queued=queued,
                    )
                    if published is not None:
                        timings["publish"] = round(time.perf_counter() - mark, 3)
                        timings["total"] = round(time.perf_counter() - started, 3)
                        await repository.set_timings(conn, run_id, timings)
            except Exception as exc:
                timings["total"] = round(time.perf_counter() - started, 3)
                await self._record_failure(run_id, kind, trading_day, requested_by, exc, timings)
                raise
        if published is not None:
            await self._judge(panel)
            if self._on_published is not None:  # after judging: the record changed too
                await self._on_published()
            logger.info(
                "run %s as of %s: %d calls, %d changed, %.2f s",
                run_id,
                published.run.trading_day,
                len(published.recommendations),
                published.changed,
                timings["total"],
            )
        return published

    async def _calibration(self, *, matured_by: date) -> Calibration:
        """The confidence map fitted on every call judged by ``matured_by`` (point in time)."""
        async with acquire(self._pool, timeout=self._acquire_timeout) as conn:
            matured = await repository.matured_calls(conn, matured_by=matured_by)
        actions, convictions, hits = track_record.calibration_inputs(matured, s.SPECS)
        return await asyncio.to_thread(fit_calibration, actions, convictions, hits)

    async def _judge(self, panel: Panel) -> int:
        """Outcomes of every call whose horizon has passed within ``panel``."""
        async with acquire(self._pool, timeout=self._acquire_timeout) as conn:
            return await service.judge(conn, panel)

    async def backfill(self, *, years: int) -> int:
        """The walk-forward backtest: a hypothetical run at each month-end of the stored
        history that has none yet, each made from the data up to that day only, with the
        confidence map fitted on the backtest's own calls matured by then. Returns the
        runs published.

        Pipelined: a month-end's calls and outcomes are computed (worker thread) while the
        month-end before it is written (database), since its confidence map only needs the
        earlier outcomes, which are pure functions of the panel. Month-ends are still
        published one after the other, in order.
        """
        async with self._lock:
            panel, _ = await self._inputs.panel(
                end=datetime.now(UTC).date(), calendar_days=years * 366 + CALENDAR_DAYS
            )
            async with acquire(self._pool, timeout=self._acquire_timeout) as conn:
                done = await repository.hypothetical_days(conn)
                # Read once, then kept up to date in memory: each month-end fits on the
                # calls matured by then (point in time), without re-reading the table.
                matured = await repository.matured_calls(conn)
            published = 0
            writing: asyncio.Task[bool] | None = None
            try:
                for day in month_ends(panel, min_sessions=self._spec.lookback_days):
                    if day in done:
                        continue
                    run_id = uuid.uuid4()
                    month = await asyncio.to_thread(
                        self._backtest_month, panel, day, matured, run_id
                    )
                    if month is None:
                        continue
                    calls, calibration, found = month
                    matured += [
                        track_record.Matured(
                            by_id.action, by_id.score, o.hit, self._spec.version, o.matured_on
                        )
                        for o, by_id in found
                    ]
                    if writing is not None:
                        published += await writing
                    write = self._publish_month(
                        run_id, calls, calibration, [o for o, _ in found], len(panel.tickers)
                    )
                    writing = asyncio.create_task(write)
                if writing is not None:
                    published += await writing
                    writing = None
            finally:
                if writing is not None:  # an error above: let the write finish or fail
                    with contextlib.suppress(Exception):
                        await writing
            await self._judge(panel)  # anything else the long panel can now judge
            if published and self._on_published is not None:
                await self._on_published()
            logger.info("backfill: %d hypothetical runs published", published)
            return published

    def _backtest_month(
        self, panel: Panel, day: date, matured: list[track_record.Matured], run_id: UUID
    ) -> tuple[list[Call], Calibration, list[tuple[track_record.Outcome, Call]]] | None:
        """One month-end of the backtest, pure: its confidence map (from the calls matured
        by ``day``), its calls, and their outcomes within the panel (keyed by the ids the
        ledger will give them)."""
        actions, convictions, hits = track_record.calibration_inputs(
            (m for m in matured if m.matured_on <= day), s.SPECS
        )
        calibration = fit_calibration(actions, convictions, hits)
        calls = publication.calls_for_ledger(panel, day, self._spec, calibration, hypothetical=True)
        if not calls:
            return None
        by_id = {publication.recommendation_id(run_id, c.ticker): c for c in calls}
        pending = [
            track_record.Pending(
                rec_id,
                c.ticker,
                c.as_of,
                c.action,
                c.horizon_days,
                next((f.value for f in c.factors if f.key == s.VOLATILITY_63D), None),
            )
            for rec_id, c in by_id.items()
        ]
        found = track_record.outcomes(panel, pending)
        return calls, calibration, [(o, by_id[o.recommendation_id]) for o in found]

    async def _publish_month(
        self,
        run_id: UUID,
        calls: list[Call],
        calibration: Calibration,
        found: list[track_record.Outcome],
        universe: int,
    ) -> bool:
        """Write one month-end of the backtest and its outcomes; False when the day was
        taken meanwhile (another replica's backfill)."""
        async with (
            acquire(self._pool, timeout=self._acquire_timeout) as conn,
            conn.transaction(),
        ):
            run = await service.publish_run(
                conn,
                run_id=run_id,
                kind="backfill",
                calls=calls,
                calibration=calibration,
                model_version=self._spec.version,
                hypothetical=True,
                universe=universe,
            )
            if run is None:
                return False
            await service.record_outcomes(conn, found)
            return True

    async def _day_taken(self, trading_day: date) -> bool:
        async with acquire(self._pool, timeout=self._acquire_timeout) as conn:
            return await repository.run_for_day(conn, trading_day, hypothetical=False) is not None

    async def _record_failure(
        self,
        run_id: UUID,
        kind: str,
        trading_day: date | None,
        requested_by: str | None,
        exc: Exception,
        timings: dict[str, float],
    ) -> None:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        try:
            async with (
                acquire(self._pool, timeout=self._acquire_timeout) as conn,
                conn.transaction(),
            ):
                if kind == "on_demand":
                    await repository.fail_run(conn, run_id, error=error)
                elif trading_day is not None:
                    await repository.record_failed_run(
                        conn,
                        run_id,
                        kind=kind,
                        trading_day=trading_day,
                        hypothetical=False,
                        model_version=self._spec.version,
                        requested_by=requested_by,
                        error=error,
                        timings=timings,
                    )
        except Exception as lost:
            if not _outage(lost):
                logger.exception("could not record the failure of run %s", run_id)
            else:  # the database the run failed on is still away: no bug to trace
                logger.warning("could not record the failure of run %s: %s", run_id, lost)

    # --- what starts a run -------------------------------------------------------------

    async def on_eod(self, event: Event[EodCompleted], _: Delivered) -> None:
        await self.run(
            kind="scheduled", trading_day=event.data.session, trigger_event=event.event_id
        )

    async def on_requested(self, event: Event[events.RunRequested], _: Delivered) -> None:
        await self.run(
            kind="on_demand", trading_day=event.data.as_of, run_id=event.data.run_id, queued=True
        )

    async def catch_up(self) -> service.Published | None:
        """A scheduled run as of the latest session with data, unless it has one."""
        return await self.run(kind="scheduled")


class RunTriggers:
    """Attaches the runner to its events and catches up at start-up, retrying quietly
    while market (its stream, its replies) is not there yet."""

    def __init__(
        self,
        runner: Runner,
        bus: Bus,
        *,
        retry_seconds: float,
        catch_up: bool,
        backfill_years: int = 0,
    ) -> None:
        self._runner = runner
        self._bus = bus
        self._retry = retry_seconds
        self._catch_up = catch_up
        self._backfill_years = backfill_years
        self._consumers: list[Consumer[Any]] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._consumers.append(
            await self._bus.consume(
                events.STREAM,
                Runner.REQUEST_CONSUMER,
                events.RUN_REQUESTED,
                Event[events.RunRequested],
                self._runner.on_requested,
                batch=1,
                ack_wait=300.0,
                max_deliver=3,
            )
        )
        self._tasks.append(asyncio.create_task(self._attach_eod(), name="eod-runs"))
        if self._catch_up:
            self._tasks.append(asyncio.create_task(self._catch_up_loop(), name="catch-up-run"))

    async def _attach_eod(self) -> None:
        logged = False
        while True:
            try:
                consumer = await self._bus.consume(
                    EOD_STREAM,
                    Runner.EOD_CONSUMER,
                    EOD_COMPLETED,
                    Event[EodCompleted],
                    self._runner.on_eod,
                    batch=1,
                    ack_wait=300.0,
                    max_deliver=5,
                )
                self._consumers.append(consumer)
                logger.info("consuming %s from stream %s", EOD_COMPLETED, EOD_STREAM)
                return
            except Exception as exc:  # market declares its stream when it starts
                if not logged:
                    logger.info("waiting for stream %s: %s", EOD_STREAM, exc)
                    logged = True
                await asyncio.sleep(self._retry)

    async def _catch_up_loop(self) -> None:
        """Today's run first (what users read), then the backtest behind it."""
        while True:
            try:
                await self._runner.catch_up()
                break
            except Exception as exc:
                logger.info("catch-up run not possible yet (%s); retrying", exc)
                await asyncio.sleep(self._retry)
        while self._backfill_years:
            try:
                await self._runner.backfill(years=self._backfill_years)
                break
            except Exception as exc:
                if not _outage(exc):
                    logger.exception("backfill failed; it resumes at the next start")
                    break
                # Market, NATS or the database away for a moment: carry on once they are
                # back (done month-ends are skipped), not at the next start.
                logger.warning("backfill paused (%s); retrying in %.0f s", exc, self._retry)
                await asyncio.sleep(self._retry)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for consumer in self._consumers:
            await consumer.stop()
