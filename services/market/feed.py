"""The live feed: simulated ticks on ``market.tick.<TICKER>``, the latest quotes kept
current from them, and the end-of-day step at each session's close.

Only one replica runs the feed (it holds a PostgreSQL advisory lock; the others wait to take
over). Only securities whose data source is ``simulated`` and that are listed tick: real
data is never mixed with simulated prices. Modes: ``always`` ticks at any hour (demo),
``schedule`` only while the NYSE session is open, ``off`` never.

Every ``interval`` seconds the feed advances ``rate x interval`` ticks (vectorised), publishes
each as pre-encoded JSON, and every ``flush_interval`` seconds writes the quotes that moved
to ``latest_quotes`` in one statement. When the wall clock passes the session's close, it
writes the session's bars (open/high/low/close/volume of the ticks), refreshes the derived
statistics and queues ``market.eod.completed`` — one transaction — then starts the next
session from those closes.

While it leads, the feed says so on ``market.feed.status`` every ``FEED_STATUS_SECONDS``,
and says it stopped when it stops (a lost database, shutdown): the realtime nodes tell
their subscribers (docs/realtime.md, "When the feed stops").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Literal

import asyncpg
import numpy as np

from services.market import events
from services.market.domain import calendar, ticks
from services.market.repository import bars as bars_repo
from services.market.repository import feed_state, quotes, stats
from services.market.repository.quotes import QuoteRow
from services.market.service.market import complete_eod
from shared.db.transaction import BACKGROUND_CONNECTION_ERRORS
from shared.messaging import Bus, MessagingUnavailableError

logger = logging.getLogger("services.market.feed")

# How often the leading feed says it runs (``market.feed.status``): a consumer that hears
# nothing for a few intervals knows the feed is gone, even when it could not say so.
FEED_STATUS_SECONDS = 2.0


@dataclass
class FeedStats:
    running: bool = False
    session: date | None = None
    ticks: int = 0
    started_at: float = field(default_factory=time.monotonic)
    flushes: int = 0
    last_flush_ms: float = 0.0
    eod_runs: int = 0
    securities: int = 0

    def as_dict(self) -> dict[str, object]:
        elapsed = max(1e-9, time.monotonic() - self.started_at)
        return {
            "running": self.running,
            "session": self.session,
            "securities": self.securities,
            "ticks": self.ticks,
            "ticks_per_second": round(self.ticks / elapsed, 1),
            "flushes": self.flushes,
            "last_flush_ms": round(self.last_flush_ms, 2),
            "eod_runs": self.eod_runs,
        }


class Feed:
    def __init__(
        self,
        pool: asyncpg.Pool,
        bus: Bus,
        *,
        mode: str,
        rate: float,
        interval: float,
        flush_interval: float,
        seed: int = 1,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_eod: Callable[[date], Awaitable[None]] | None = None,
    ) -> None:
        self._pool = pool
        self._bus = bus
        self._mode = mode
        self._rate = rate
        self._interval = interval
        self._flush_interval = flush_interval
        self._rng = np.random.default_rng(seed)
        self._clock = clock
        self._on_eod = on_eod
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.stats = FeedStats()
        self._state: ticks.SessionState | None = None
        self._ids: np.ndarray = np.empty(0, dtype=np.int32)
        self._dirty: set[int] = set()
        self._subjects: list[str] = []

    def start(self, ready: Callable[[], Awaitable[bool]]) -> None:
        self._task = asyncio.create_task(self._run(ready), name="market-feed")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.stats.running = False

    async def _run(self, ready: Callable[[], Awaitable[bool]]) -> None:
        while not self._stopping.is_set():
            try:
                if await ready():
                    async with self._pool.acquire() as lock_conn:
                        if await feed_state.try_lead(lock_conn):
                            try:
                                await self._lead()
                            finally:
                                await self._announce("stopped")
                                await feed_state.stop_leading(lock_conn)
            except asyncio.CancelledError:
                raise
            except BACKGROUND_CONNECTION_ERRORS as exc:  # the database went away: no bug
                logger.warning("feed stopped, database unavailable (%s); restarting in 5 s", exc)
            except Exception:
                logger.exception("feed failed; restarting in 5 s")
            self.stats.running = False
            await asyncio.sleep(5)

    async def _lead(self) -> None:
        await self._load_state()
        assert self._state is not None
        logger.info(
            "feed running: %d securities, %.0f ticks/s, session %s, mode %s",
            len(self._state),
            self._rate,
            self.stats.session,
            self._mode,
        )
        self.stats.running = True
        self.stats.started_at = time.monotonic()
        self.stats.ticks = 0
        next_flush = time.monotonic() + self._flush_interval
        next_status = 0.0
        carry = 0.0
        last = time.monotonic()
        while not self._stopping.is_set():
            if time.monotonic() >= next_status:
                await self._announce("running")
                next_status = time.monotonic() + FEED_STATUS_SECONDS
            session = self.stats.session
            assert session is not None
            now = self._clock()
            opens, closes = calendar.session_bounds(session)
            if now >= closes:
                await self._flush()
                await self._end_of_day(session)
                continue
            ticking = self._mode == "always" or opens <= now
            current = time.monotonic()
            if ticking:
                # At most a second of backlog: a stall is not made up with a burst.
                carry = min(carry + self._rate * (current - last), self._rate)
                count = int(carry)
                if count:
                    carry -= await self._tick(count, int(now.timestamp() * 1000))
            last = current
            if current >= next_flush:
                await self._flush()
                next_flush = current + self._flush_interval
            await asyncio.sleep(self._interval if ticking else 1.0)

    async def _announce(self, state: Literal["running", "stopped"]) -> None:
        """Tell consumers the feed runs (every FEED_STATUS_SECONDS) or has stopped."""
        status = events.FeedStatus(
            state=state,
            interval_seconds=FEED_STATUS_SECONDS,
            ts=int(time.time() * 1000),
        )
        with contextlib.suppress(MessagingUnavailableError):
            await self._bus.publish(events.FEED_STATUS, status)

    async def _load_state(self) -> None:
        async with self._pool.acquire() as conn:
            rows = await feed_state.simulated_universe(conn)
        last_day = max((r.session for r in rows if r.session is not None), default=None)
        if last_day is None:
            raise RuntimeError("no quotes to start the feed from")
        # The session in progress (or the next one) after the last stored bar.
        async with self._pool.acquire() as conn:
            bar_day = await stats.latest_index_day(conn)
        base = bar_day or last_day
        session = calendar.next_session(base)
        n = len(rows)
        state = ticks.SessionState(
            tickers=[r.ticker for r in rows],
            previous_close=np.array([r.close for r in rows]),
            price=np.array([r.close for r in rows]),
            day_open=np.full(n, np.nan),
            day_high=np.full(n, np.nan),
            day_low=np.full(n, np.nan),
            volume=np.zeros(n, dtype=np.int64),
            daily_vol=np.array([r.daily_vol for r in rows]),
            avg_volume=np.array([r.avg_volume for r in rows]),
        )
        # Resume a session already under way (a restart): keep its quotes.
        for i, r in enumerate(rows):
            if r.session == session and r.day_open is not None:
                state.price[i] = r.price
                state.previous_close[i] = r.previous_close or r.close
                state.day_open[i] = r.day_open
                state.day_high[i] = r.day_high if r.day_high is not None else r.price
                state.day_low[i] = r.day_low if r.day_low is not None else r.price
                state.volume[i] = r.volume
        self._state = state
        self._ids = np.array([r.security_id for r in rows], dtype=np.int32)
        self._subjects = [events.tick_subject(t) for t in state.tickers]
        self.stats.session = session
        self.stats.securities = n

    async def _tick(self, count: int, ts: int) -> int:
        """Publish up to ``count`` ticks (one per security at most); return how many."""
        state = self._state
        assert state is not None
        idx = ticks.step(state, self._rng, count, self._rate)
        publish = self._bus.publish_raw
        tickers = state.tickers
        prices = state.price[idx].tolist()
        previous = state.previous_close[idx].tolist()
        volumes = state.volume[idx].tolist()
        try:
            for k, i in enumerate(idx.tolist()):
                await publish(
                    self._subjects[i],
                    events.encode_tick(tickers[i], prices[k], previous[k], volumes[k], ts),
                )
        except MessagingUnavailableError:
            logger.debug("ticks dropped: NATS unavailable")
        self._dirty.update(idx.tolist())
        self.stats.ticks += len(idx)
        return len(idx)

    async def _flush(self) -> None:
        state = self._state
        if state is None or not self._dirty:
            return
        started = time.perf_counter()
        dirty = sorted(self._dirty)
        self._dirty.clear()
        now = self._clock()
        session = self.stats.session
        rows = [
            QuoteRow(
                ticker=state.tickers[i],
                price=float(state.price[i]),
                previous_close=float(state.previous_close[i]),
                volume=int(state.volume[i]),
                updated_at=now,
                session=session,
                day_open=float(state.day_open[i]),
                day_high=float(state.day_high[i]),
                day_low=float(state.day_low[i]),
            )
            for i in dirty
        ]
        async with self._pool.acquire() as conn, conn.transaction():
            await quotes.write_quotes(conn, rows)
            await quotes.rebuild_snapshot(conn)
        self.stats.flushes += 1
        self.stats.last_flush_ms = (time.perf_counter() - started) * 1000

    async def _end_of_day(self, session: date) -> None:
        state = self._state
        assert state is not None
        traded = np.flatnonzero(~np.isnan(state.day_open))
        bars = bars_repo.BarArrays(
            self._ids[traded],
            np.full(len(traded), np.datetime64(session, "D")),
            state.day_open[traded],
            state.day_high[traded],
            state.day_low[traded],
            state.price[traded],
            state.volume[traded],
        )
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                counts = await bars_repo.merge(conn, bars)
                await complete_eod(
                    conn,
                    session=session,
                    inserted=counts.inserted,
                    updated=counts.updated,
                    securities_count=len(traded),
                    source="feed",
                )
            await bars_repo.refresh_periods(conn, session, session)
        logger.info("session %s closed: %d bars stored", session, len(traded))
        closes = state.price.copy()
        ticks.new_session(state, closes)
        self.stats.session = calendar.next_session(session)
        self.stats.eod_runs += 1
        if self._on_eod is not None:
            await self._on_eod(session)
