"""The scheduled end-of-day sync from a provider (``MARKET_PROVIDER``).

After each NYSE session's close plus ``MARKET_SYNC_DELAY_MINUTES`` (the exchange
calendar's closes: holidays are not sessions, early closes are early), the sync fetches every
session not synced yet -- a replica that was down catches up, at most
``MARKET_SYNC_CATCHUP_SESSIONS`` -- from the provider, for the listed securities that are not
simulated, and stores each session in one transaction, oldest first: its splits and
dividends (through :mod:`services.market.service.corporate_actions`, which announces
``market.actions.recorded``), its bars (through the import path: validation, merge, derived
statistics and ``market.eod.completed``), the covered securities' quotes, and the ledger
row that says the session is synced. A session the provider has no bars for yet stops the
round; the next round tries it again.

One replica syncs at a time (a PostgreSQL advisory lock held for the round); the ledger is
checked again inside each session's transaction, so a session is stored, and its
``market.eod.completed`` queued, once. Each provider's position and last error are in
``provider_sync`` and served on ``/api/v1/market/status``. The API key never reaches a log
line or the stored error (``redact_secret``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import asyncpg

from services.market.domain import sync_schedule
from services.market.importers.providers import ProviderBar, ProviderError
from services.market.providers import SessionData, SyncProvider
from services.market.repository import provider_sync as repo
from services.market.repository import quotes
from services.market.service import corporate_actions
from services.market.service.imports import from_provider, import_bars
from shared.db.transaction import BACKGROUND_CONNECTION_ERRORS, request_transaction

logger = logging.getLogger("services.market.sync")


@dataclass
class SyncRound:
    """What one round did."""

    led: bool = False  # False: another replica held the lock
    due: list[date] = field(default_factory=list)
    synced: list[date] = field(default_factory=list)
    error: str | None = None


class ProviderSync:
    def __init__(
        self,
        pool: asyncpg.Pool,
        provider: SyncProvider,
        *,
        delay: timedelta,
        poll_seconds: float,
        catchup: int,
        secret: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_session: Callable[[date], Awaitable[None]] | None = None,
    ) -> None:
        self._pool = pool
        self.provider = provider
        self._delay = delay
        self._poll = poll_seconds
        self._catchup = catchup
        self._secret = secret
        self._clock = clock
        self._on_session = on_session
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0

    @property
    def source(self) -> str:
        return f"provider:{self.provider.name}"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="market-provider-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def next_run_at(self) -> datetime:
        return sync_schedule.next_run(self._clock(), delay=self._delay)

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except BACKGROUND_CONNECTION_ERRORS as exc:
                logger.warning("provider sync: database unavailable (%s)", exc)
            except Exception:
                logger.exception("provider sync failed")
            # Wake at the next session's due time, or after the poll interval (a round that
            # stopped on an error or on a session not yet published tries again then).
            wait = (self.next_run_at() - self._clock()).total_seconds()
            await asyncio.sleep(max(1.0, min(self._poll, wait)))

    async def run_once(self) -> SyncRound:
        """One round, if this replica gets the lock."""
        self.rounds += 1
        async with self._pool.acquire() as lock_conn:
            if not await repo.try_lead(lock_conn):
                return SyncRound()
            try:
                return await self._round()
            finally:
                await repo.stop_leading(lock_conn)

    async def _round(self) -> SyncRound:
        name = self.provider.name
        async with self._pool.acquire() as conn:
            state = await repo.state(conn, name)
            covered = await repo.covered(conn)
            stored = await repo.last_stored_day(conn, list(covered.values()))
        result = SyncRound(led=True)
        if not covered:
            return result
        result.due = sync_schedule.due_sessions(
            self._clock(),
            delay=self._delay,
            last_synced=state.last_session if state else None,
            last_stored=stored,
            catchup=self._catchup,
        )
        if not result.due:
            return result
        async with self._pool.acquire() as conn:
            await repo.attempted(conn, name)
        logger.info(
            "provider sync (%s): %d session(s) due, %s to %s, %d securities",
            name,
            len(result.due),
            result.due[0],
            result.due[-1],
            len(covered),
        )
        try:
            data = await self.provider.fetch(result.due[0], result.due[-1], covered.keys())
        except ProviderError as exc:
            return await self._failed(result, f"{type(exc).__name__}: {exc}")
        by_day = _by_session(data)
        for session in result.due:
            bars = by_day.get(session)
            if not bars:
                return await self._failed(
                    result, f"the provider has no bars for {session} yet; trying again later"
                )
            if await self._store(session, bars, data, covered):
                result.synced.append(session)
                if self._on_session is not None:
                    await self._on_session(session)
        return result

    async def _store(
        self, session: date, bars: list[ProviderBar], data: SessionData, covered: dict[str, int]
    ) -> bool:
        name = self.provider.name
        async with request_transaction(self._pool, acquire_timeout=30.0) as unit:
            conn = await unit.connection()
            if await repo.session_done(conn, name, session):
                return False  # another replica stored it meanwhile
            actions = [
                (covered[s.ticker], s.ex_date, "split", s.ratio)
                for s in data.splits
                if s.ex_date == session and s.ticker in covered
            ] + [
                (covered[d.ticker], d.ex_date, "dividend", d.amount)
                for d in data.dividends
                if d.ex_date == session and d.ticker in covered
            ]
            # Actions first: the end of day's derived data (dividend factors) sees them.
            await corporate_actions.record_actions(conn, actions, self.source)
            summary = await import_bars(unit, from_provider(bars, self.source))
            await quotes.quotes_from_bars(
                conn, session, sorted({covered[b.ticker] for b in bars if b.ticker in covered})
            )
            await quotes.rebuild_snapshot(conn)
            await repo.synced(
                conn,
                name,
                repo.SyncedSession(
                    session,
                    summary.inserted,
                    summary.updated,
                    summary.rejected,
                    sum(1 for a in actions if a[2] == "split"),
                    sum(1 for a in actions if a[2] == "dividend"),
                    len(data.unknown_tickers),
                ),
            )
        logger.info(
            "provider sync (%s): %s stored, %d bars inserted, %d updated, %d rejected",
            name,
            session,
            summary.inserted,
            summary.updated,
            summary.rejected,
        )
        return True

    async def _failed(self, result: SyncRound, error: str) -> SyncRound:
        if self._secret:
            error = error.replace(self._secret, "***")
        result.error = error
        logger.warning("provider sync (%s): %s", self.provider.name, error)
        async with self._pool.acquire() as conn:
            await repo.failed(conn, self.provider.name, error)
        return result


def _by_session(data: SessionData) -> dict[date, list[ProviderBar]]:
    found: dict[date, list[ProviderBar]] = defaultdict(list)
    for bar in data.bars:
        found[bar.day].append(bar)
    return found
