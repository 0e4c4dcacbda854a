"""One socket's outbound side: a bounded buffer, conflated per ticker, and its writer.

Nothing a client does (or fails to do) slows anyone else down: the hub only ever puts
bytes in a socket's buffer (never awaits a socket), and each socket's writer sends what
is buffered when its previous write has gone out. While a socket cannot keep up, a newer
quote of a ticker replaces the unsent older one (conflation), so the buffer holds at
most one quote per subscribed ticker plus a bounded list of control messages. A socket
whose oldest unsent message is older than ``max_lag`` (or whose control list overflows)
is closed with 4008 by the hub's watchdog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from services.realtime.streams import protocol
from services.realtime.streams.metrics import DELIVERY_LATENCY, StreamStats

logger = logging.getLogger("realtime.streams")

CLOSE_TIMEOUT = 5.0  # seconds a close frame may wait behind a full buffer
MAX_CONTROL = 256  # control messages (alerts, pongs, errors) waiting to be written


class Outbound:
    """The outbound buffer and writer task of one socket."""

    def __init__(
        self,
        websocket: WebSocket,
        stats: StreamStats,
        *,
        max_lag: float,
        coalesce: float = 0.0,
        max_control: int = MAX_CONTROL,
    ) -> None:
        self.websocket = websocket
        self.stats = stats
        self.max_lag = max_lag
        self._coalesce = coalesce
        self._max_control = max_control
        self._loop = asyncio.get_running_loop()
        self._pending: dict[str, bytes] = {}
        self._control: list[bytes] = []
        self._oldest = 0.0  # loop time the oldest unsent message was buffered; 0 if none
        self._wake = asyncio.Event()
        self._closing = False
        self.last_write = self._loop.time()
        self.closed = asyncio.Event()  # set once the close frame is out (or given up)
        self._writer = asyncio.create_task(self._write_loop(), name="ws-writer")

    # -- buffering (synchronous: callers never wait on a socket) -------------------------

    def offer(self, ticker: str, data: bytes) -> None:
        """Buffer a quote, replacing an unsent older one of the same ticker."""
        if self._closing:
            return
        pending = self._pending
        if ticker in pending:
            self.stats.conflated += 1
        elif not self._oldest:
            self._oldest = self._loop.time()
        pending[ticker] = data
        self._wake.set()

    def offer_if_absent(self, ticker: str, data: bytes) -> None:
        """Buffer a snapshot quote unless a live one of the ticker is already waiting."""
        if ticker not in self._pending:
            self.offer(ticker, data)

    def send_control(self, data: bytes) -> None:
        """Buffer a control message (in order, before the quotes of the same frame)."""
        if self._closing:
            return
        if not self._oldest:
            self._oldest = self._loop.time()
        self._control.append(data)
        self._wake.set()

    def forget(self, tickers: list[str] | tuple[str, ...]) -> None:
        """Drop unsent quotes of ``tickers`` (after an unsubscribe)."""
        for ticker in tickers:
            self._pending.pop(ticker, None)

    # -- health ----------------------------------------------------------------------------

    def lag(self, now: float) -> float:
        """How long the oldest unsent message has waited (0 when nothing waits)."""
        return now - self._oldest if self._oldest else 0.0

    def too_slow(self, now: float) -> bool:
        return self.lag(now) > self.max_lag or len(self._control) > self._max_control

    @property
    def closing(self) -> bool:
        return self._closing

    # -- writing ---------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        loop = self._loop
        try:
            while True:
                await self._wake.wait()
                if self._coalesce:
                    await asyncio.sleep(self._coalesce)
                self._wake.clear()
                if self._closing:
                    return
                control, pending = self._control, self._pending
                if not control and not pending:
                    continue
                oldest = self._oldest
                self._control, self._pending, self._oldest = [], {}, 0.0
                messages = [*control, *pending.values()] if control else list(pending.values())
                await self.websocket.send(
                    {"type": "websocket.send", "text": protocol.frame(messages)}
                )
                now = loop.time()
                self.last_write = now
                self.stats.delivered += len(pending)
                self.stats.frames += 1
                DELIVERY_LATENCY.observe(now - oldest)
        except (WebSocketDisconnect, OSError, RuntimeError):
            # The peer went away, or the socket is closing: the reader ends the session.
            self._closing = True

    async def close(self, code: int, reason: str, *, timeout: float = CLOSE_TIMEOUT) -> None:
        """Stop writing, drop what is unsent and send a close frame. Idempotent.

        A close frame cannot pass a full buffer: if the peer does not read within
        ``timeout`` seconds, the connection is aborted.
        """
        if self._closing and self.closed.is_set():
            return
        self._closing = True
        self.stats.dropped += len(self._pending)
        self._pending.clear()
        self._control.clear()
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        try:
            await asyncio.wait_for(
                self.websocket.send({"type": "websocket.close", "code": code, "reason": reason}),
                timeout,
            )
        except TimeoutError:
            logger.info("peer did not take the close frame (%s) in time; aborting", code)
            abort_transport(self.websocket)
        except (WebSocketDisconnect, OSError, RuntimeError):
            pass
        finally:
            self.closed.set()

    async def stop(self) -> None:
        """End the writer without a close frame (the peer is gone already)."""
        self._closing = True
        self.stats.dropped += len(self._pending)
        self._pending.clear()
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self.closed.set()


def abort_transport(websocket: WebSocket) -> None:
    """Drop the TCP connection of ``websocket`` now, without a closing handshake.

    ASGI gives an app no way to abort, and a peer that stopped reading would otherwise
    hold the connection (and its buffers) until TCP gives up. uvicorn's protocol object
    owns the ``receive`` callable it hands the app; use its transport if it is there.
    """
    receive = getattr(websocket, "_receive", None)
    protocol_object: Any = getattr(receive, "__self__", None)
    transport = getattr(protocol_object, "transport", None)
    if transport is not None and hasattr(transport, "abort"):
        transport.abort()
