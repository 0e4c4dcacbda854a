"""Whether this node's price feed is live, told to every price socket when that changes.

A subscriber cannot tell a quiet ticker from a feed that stopped: during an outage the
socket would simply go silent. So the node sends a ``status`` message to every open price
socket when the feed stops and when it resumes (protocol: docs/realtime.md):

- the node's own NATS connection is lost (``reason: "nats"``): no tick can reach it;
- the market's feed says it stopped (``market.feed.status``, ``reason: "market_feed_stopped"``:
  it lost its database, or it is shutting down);
- the market's feed said it ran, then said nothing for ``silence_intervals`` of its
  announced interval (``reason: "market_feed_silent"``: the market service is gone).

A feed never heard from is taken as live (the feed may be off on purpose: nothing to
report). Pure state plus one watchdog task; the sockets are :class:`Outbound` writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from services.realtime.feeds import FEED_STATUS, FeedStatus
from services.realtime.streams import protocol
from services.realtime.streams.session import Outbound
from shared.messaging import Bus, Delivered, Subscription

logger = logging.getLogger("realtime.feed")


class FeedWatch:
    """See the module docstring. Start with :meth:`start`, end with :meth:`stop`."""

    def __init__(self, bus: Bus, *, silence_intervals: float = 3.0) -> None:
        self._bus = bus
        self._silence_intervals = silence_intervals
        self._sockets: set[Outbound] = set()
        self._nats_up = True
        self._market: str | None = None  # "running", "stopped", "silent" or never heard
        self._interval = 2.0
        self._last_status = 0.0
        self._reason: str | None = None  # why the feed is interrupted; None while live
        self._subscription: Subscription | None = None
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def live(self) -> bool:
        return self._reason is None

    @property
    def reason(self) -> str | None:
        return self._reason

    async def start(self) -> None:
        self._nats_up = self._bus.is_connected
        self._bus.on_connection_change(self._on_connection)
        self._subscription = await self._bus.subscribe(FEED_STATUS, FeedStatus, self._on_status)
        self._watchdog = asyncio.create_task(self._watch(), name="feed-watchdog")

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        if self._subscription is not None:
            await self._subscription.unsubscribe()

    def join(self, socket: Outbound) -> None:
        """Tell ``socket`` about changes from now on, and now if the feed is interrupted."""
        self._sockets.add(socket)
        if self._reason is not None:
            socket.send_control(self._message())

    def leave(self, socket: Outbound) -> None:
        self._sockets.discard(socket)

    # -- inputs ----------------------------------------------------------------------------

    def _on_connection(self, connected: bool) -> None:
        self._nats_up = connected
        if connected:
            # Whatever the market said before is stale: wait for it to speak again
            # (a running feed does within one interval).
            self._market = None
        self._update()

    async def _on_status(self, status: FeedStatus, _: Delivered) -> None:
        self._market = status.state
        self._interval = status.interval_seconds
        self._last_status = time.monotonic()
        self._update()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(min(0.5, self._interval / 2))
            silent_for = time.monotonic() - self._last_status
            if self._market == "running" and silent_for > self._silence_intervals * self._interval:
                self._market = "silent"
                self._update()

    # -- output ----------------------------------------------------------------------------

    def _current_reason(self) -> str | None:
        if not self._nats_up:
            return "nats"
        if self._market == "stopped":
            return "market_feed_stopped"
        if self._market == "silent":
            return "market_feed_silent"
        return None

    def _update(self) -> None:
        reason = self._current_reason()
        if reason == self._reason:
            return
        self._reason = reason
        if reason is None:
            logger.info("price feed resumed; telling %d socket(s)", len(self._sockets))
        else:
            logger.warning(
                "price feed interrupted (%s); telling %d socket(s)", reason, len(self._sockets)
            )
        message = self._message()
        for socket in list(self._sockets):
            if not socket.closing:
                socket.send_control(message)

    def _message(self) -> bytes:
        if self._reason is None:
            return protocol.message("status", feed="live", ts=protocol.now_ms())
        return protocol.message(
            "status", feed="interrupted", reason=self._reason, ts=protocol.now_ms()
        )
