"""One node's tick routing: NATS subscriptions shared by every socket of the node, the
latest quote of each ticker it follows, the snapshot on subscribe, and fan-out.

Subscriptions on NATS are counted per ticker (sockets and the alert evaluator share
them): with ``per_ticker`` routing the first interest in a ticker subscribes to
``market.tick.<TICKER>`` and the last one leaving unsubscribes; with ``wildcard`` routing
the node holds one ``market.tick.>`` subscription and routes locally. Either way there is
one NATS connection per node (the bus's).

Snapshot order on subscribe: the node's latest-value cache first, then ``market.rpc.quotes``
for the tickers the cache does not have. A snapshot is never sent after a newer live quote.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Literal

from services.realtime.feeds import (
    QUOTES_RPC,
    TICK_WILDCARD,
    QuotesReply,
    QuotesRequest,
    Tick,
    tick_subject,
)
from services.realtime.streams import protocol
from services.realtime.streams.metrics import StatsOwner, StreamStats
from services.realtime.streams.session import Flusher, Outbound, Quote
from shared.errors import AppError
from shared.messaging import Bus, Delivered, Subscription

logger = logging.getLogger("realtime.hub")

Routing = Literal["per_ticker", "wildcard"]
TickListener = Callable[[Tick], None]


class Latest:
    """The latest quote of a ticker: its timestamp, the tick and its encoded message."""

    __slots__ = ("quote", "tick", "ts")

    def __init__(self, tick: Tick, quote: Quote) -> None:
        self.ts = tick.ts
        self.tick = tick
        self.quote = quote


class TickHub(StatsOwner):
    """See the module docstring. Start with :meth:`start`, end with :meth:`stop`."""

    def __init__(
        self,
        bus: Bus,
        *,
        routing: Routing = "per_ticker",
        snapshot_timeout: float = 1.0,
        heartbeat: float = 15.0,
        coalesce: float = 0.0,
        stats: StreamStats | None = None,
    ) -> None:
        self._bus = bus
        self.routing = routing
        self._snapshot_timeout = snapshot_timeout
        self._heartbeat = heartbeat
        self.stats = stats or StreamStats()
        self.flusher = Flusher(coalesce)  # writes every socket's frame, once per loop turn
        self._sessions: dict[str, set[Outbound]] = {}
        self._interest: dict[str, int] = {}
        self._nats: dict[str, Subscription] = {}
        self._wildcard: Subscription | None = None
        self._latest: dict[str, Latest] = {}
        self._listeners: list[TickListener] = []
        self._lock = asyncio.Lock()
        self._sockets: set[Outbound] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._closers: set[asyncio.Task[None]] = set()
        self.register_stats()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self.routing == "wildcard":
            self._wildcard = await self._bus.subscribe(TICK_WILDCARD, Tick, self._on_tick)
            self.stats.nats_subscriptions = 1
        self._watchdog = asyncio.create_task(self._watch(), name="ws-watchdog")

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        for sub in [*self._nats.values(), *([self._wildcard] if self._wildcard else [])]:
            await sub.unsubscribe()
        self._nats.clear()
        self._wildcard = None
        if self._closers:
            await asyncio.gather(*self._closers, return_exceptions=True)

    async def go_away(self, timeout: float = 2.0) -> None:
        """Tell every socket to reconnect elsewhere (1001) — before the node stops."""
        sockets = [s for s in self._sockets if not s.closing]
        await asyncio.gather(
            *(
                s.close(
                    protocol.CLOSE_GOING_AWAY, "server shutting down; reconnect", timeout=timeout
                )
                for s in sockets
            ),
            return_exceptions=True,
        )

    # -- sockets ---------------------------------------------------------------------------

    def attach(self, socket: Outbound) -> None:
        """Watch ``socket`` (heartbeats, slowness) until :meth:`detach`."""
        self._sockets.add(socket)

    async def detach(self, socket: Outbound, tickers: Iterable[str] = ()) -> None:
        self._sockets.discard(socket)
        await self.unsubscribe(socket, list(tickers))

    async def subscribe(self, socket: Outbound, tickers: list[str]) -> None:
        """Route ``tickers`` (new for ``socket``) to it, snapshot first."""
        for ticker in tickers:
            self._sessions.setdefault(ticker, set()).add(socket)
        self.stats.client_subscriptions += len(tickers)
        missing = self._snapshot_from_cache(socket, tickers)
        await self.acquire(tickers)
        if missing:
            # Ticks may have arrived while subscribing: they were routed to the socket.
            missing = [t for t in missing if t not in self._latest]
        if missing:
            await self._snapshot_from_market(socket, missing)

    async def unsubscribe(self, socket: Outbound, tickers: list[str]) -> None:
        for ticker in tickers:
            sockets = self._sessions.get(ticker)
            if sockets is not None:
                sockets.discard(socket)
                if not sockets:
                    del self._sessions[ticker]
        self.stats.client_subscriptions -= len(tickers)
        socket.forget(tickers)
        await self.release(tickers)

    # -- interest (shared NATS subscriptions) ---------------------------------------------

    def add_listener(self, listener: TickListener) -> None:
        """Also call ``listener(tick)`` for every tick this node receives."""
        self._listeners.append(listener)

    async def acquire(self, tickers: Iterable[str]) -> None:
        """Count an interest in ``tickers``; the first one subscribes on NATS."""
        new = []
        for ticker in tickers:
            count = self._interest.get(ticker, 0)
            self._interest[ticker] = count + 1
            if count == 0:
                new.append(ticker)
        if new and self.routing == "per_ticker":
            await self._reconcile(new)

    async def release(self, tickers: Iterable[str]) -> None:
        """Drop an interest; the last one leaving unsubscribes on NATS."""
        gone = []
        for ticker in tickers:
            count = self._interest.get(ticker, 0) - 1
            if count > 0:
                self._interest[ticker] = count
            else:
                self._interest.pop(ticker, None)
                gone.append(ticker)
        if gone and self.routing == "per_ticker":
            await self._reconcile(gone)

    async def _reconcile(self, tickers: list[str]) -> None:
        # One lock: subscribe/unsubscribe only queue a protocol line (no round trip), and
        # serialising them keeps interest and subscriptions consistent under races.
        async with self._lock:
            added = False
            for ticker in tickers:
                wanted = ticker in self._interest
                held = self._nats.get(ticker)
                if wanted and held is None:
                    self._nats[ticker] = await self._bus.subscribe(
                        tick_subject(ticker), Tick, self._on_tick
                    )
                    added = True
                elif not wanted and held is not None:
                    del self._nats[ticker]
                    self._latest.pop(ticker, None)  # no longer kept fresh
                    await held.unsubscribe()
            self.stats.nats_subscriptions = len(self._nats)
            if added:
                # The server knows our interest once it answers a ping: from then on no
                # tick is missed, so a snapshot taken now is followed by every later tick.
                with contextlib.suppress(AppError):
                    await self._bus.ping(timeout=self._snapshot_timeout)

    def interested(self, ticker: str) -> bool:
        return ticker in self._interest

    def latest(self, ticker: str) -> Tick | None:
        entry = self._latest.get(ticker)
        return entry.tick if entry is not None else None

    # -- ticks -----------------------------------------------------------------------------

    async def _on_tick(self, tick: Tick, _: Delivered) -> None:
        self.stats.ticks_received += 1
        ticker = tick.ticker
        current = self._latest.get(ticker)
        if current is not None and current.ts > tick.ts:
            return  # an older tick overtaken by a newer one: latest wins
        quote = Quote(protocol.encode_quote(tick))  # once per tick, for every socket
        if self.routing == "wildcard" or ticker in self._interest:
            self._latest[ticker] = Latest(tick, quote)
        sockets = self._sessions.get(ticker)
        if sockets:
            for socket in sockets:
                socket.offer(ticker, quote)
        for listener in self._listeners:
            listener(tick)

    def _snapshot_from_cache(self, socket: Outbound, tickers: list[str]) -> list[str]:
        missing = []
        for ticker in tickers:
            entry = self._latest.get(ticker)
            if entry is None:
                missing.append(ticker)
            else:
                socket.offer_if_absent(
                    ticker, Quote(protocol.encode_quote(entry.tick, snapshot=True))
                )
        return missing

    async def _snapshot_from_market(self, socket: Outbound, tickers: list[str]) -> None:
        try:
            reply = await self._bus.request(
                QUOTES_RPC,
                QuotesRequest(tickers=tickers),
                QuotesReply,
                timeout=self._snapshot_timeout,
            )
        except AppError as exc:
            # No snapshot is not an error for the client: live quotes follow.
            logger.info("no snapshot from market for %d tickers: %s", len(tickers), exc.message)
            return
        wanted = set(tickers)
        for quote in reply.quotes:
            ticker = quote.ticker
            if ticker not in wanted or socket not in self._sessions.get(ticker, ()):
                continue
            current = self._latest.get(ticker)
            if current is not None and current.ts >= quote.ts:
                continue  # a live quote, as new or newer, was already routed to the socket
            if self.routing == "wildcard" or ticker in self._interest:
                self._latest[ticker] = Latest(quote, Quote(protocol.encode_quote(quote)))
            socket.offer_if_absent(ticker, Quote(protocol.encode_quote(quote, snapshot=True)))

    # -- heartbeats and slow consumers ---------------------------------------------------

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        lags = [s.max_lag for s in self._sockets] or [1.0]
        interval = min(0.25, self._heartbeat / 4, min(lags) / 4)
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for socket in list(self._sockets):
                if socket.closing:
                    continue
                if socket.too_slow(now):
                    self.stats.slow_disconnects += 1
                    logger.info("closing a slow consumer (lag %.1fs)", socket.lag(now))
                    task = asyncio.create_task(
                        socket.close(protocol.CLOSE_SLOW_CONSUMER, "slow consumer")
                    )
                    self._closers.add(task)
                    task.add_done_callback(self._closers.discard)
                elif now - socket.last_write >= self._heartbeat:
                    socket.send_control(protocol.message("heartbeat", ts=protocol.now_ms()))
