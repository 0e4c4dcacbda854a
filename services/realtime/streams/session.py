"""One socket's outbound side: a bounded buffer, conflated per ticker, and the node's
flusher that writes every socket's buffer as one frame.

Nothing a client does (or fails to do) slows anyone else down: the hub only ever puts
bytes in a socket's buffer (never awaits a socket). The first message buffered for a
socket puts it on the node's :class:`Flusher` list; once per event-loop turn (or after
``coalesce`` seconds) the flusher writes one frame for each socket on the list. While a
socket cannot keep up (its transport paused writing, or its previous ASGI send is still
in flight), a newer quote of a ticker replaces the unsent older one (conflation), so the
buffer holds at most one quote per subscribed ticker plus a bounded list of control
messages. A socket whose oldest unsent message is older than ``max_lag`` (or whose control
list overflows) is closed with 4008 by the hub's watchdog.

Writing a data frame: with our server (``services.realtime.server``) the uvicorn
protocol object of the connection is in the ASGI scope (extension ``FRAME_WRITER``), and
a frame is one ``transport.write`` of the header and the bytes — no task, no ASGI send
chain. Under any other ASGI server the frame goes through ``websocket.send`` in a task.
What the direct path relies on is listed on ``server.RealtimeWebSocketProtocol`` and
checked by ``services/realtime/tests/test_session.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from typing import Any, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect

from services.realtime.streams.metrics import DELIVERY_LATENCY, StreamStats

logger = logging.getLogger("realtime.streams")

CLOSE_TIMEOUT = 5.0  # seconds a close frame may wait behind a full buffer
MAX_CONTROL = 256  # control messages (alerts, pongs, errors) waiting to be written
FRAME_WRITER = "bourse.frame_writer"  # ASGI scope extension: see services.realtime.server


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented, uncompressed server text frame (RFC 6455 5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class Quote:
    """An encoded ``quote`` message, shared by every socket it goes to.

    ``alone()`` is the whole wire frame carrying just this message (the common case: one
    quote due on a socket in a turn), built on first use and reused by every subscriber.
    """

    __slots__ = ("_alone", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._alone: bytes | None = None

    def alone(self) -> bytes:
        alone = self._alone
        if alone is None:
            alone = self._alone = text_frame(b"[" + self.data + b"]")
        return alone


class FrameWriter(Protocol):
    """What the direct path uses of uvicorn's websockets-sansio protocol object."""

    transport: asyncio.Transport
    writable: asyncio.Event
    close_sent: bool
    disconnected: bool


class Flusher:
    """Writes the frames of every socket with something buffered, once per loop turn.

    One callback per turn for the whole node instead of a writer task per socket: the
    cost of waking a socket's writer (an event, a task step) was paid per frame.
    """

    __slots__ = ("_coalesce", "_due", "_loop", "_scheduled")

    def __init__(self, coalesce: float = 0.0) -> None:
        self._loop = asyncio.get_running_loop()
        self._coalesce = coalesce
        self._due: list[Outbound] = []
        self._scheduled = False

    def due(self, socket: Outbound) -> None:
        self._due.append(socket)
        if not self._scheduled:
            self._scheduled = True
            if self._coalesce:
                self._loop.call_later(self._coalesce, self._flush)
            else:
                self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        due, self._due = self._due, []
        now = self._loop.time()
        for socket in due:
            try:
                socket.flush(now)
            except Exception:  # one socket's failure must not cost the others their frame
                logger.exception("writing a frame failed")


class Outbound:
    """The outbound buffer of one socket."""

    __slots__ = (
        "_close_done",
        "_closing",
        "_control",
        "_flusher",
        "_in_flight",
        "_loop",
        "_max_control",
        "_oldest",
        "_pending",
        "_queued",
        "_wire",
        "last_write",
        "max_lag",
        "stats",
        "websocket",
    )

    def __init__(
        self,
        websocket: WebSocket,
        stats: StreamStats,
        flusher: Flusher,
        *,
        max_lag: float,
        max_control: int = MAX_CONTROL,
    ) -> None:
        self.websocket = websocket
        self.stats = stats
        self.max_lag = max_lag
        self._flusher = flusher
        self._max_control = max_control
        self._loop = asyncio.get_running_loop()
        self._wire: FrameWriter | None = websocket.scope.get("extensions", {}).get(FRAME_WRITER)
        self._pending: dict[str, Quote] = {}
        self._control: list[bytes] = []
        self._oldest = 0.0  # loop time the oldest unsent message was buffered; 0 if none
        self._queued = False  # on the flusher's list
        self._in_flight: asyncio.Task[None] | None = None  # a send waiting (ASGI or paused)
        self._closing = False
        self._close_done = False
        self.last_write = self._loop.time()

    # -- buffering (synchronous: callers never wait on a socket) -------------------------

    def offer(self, ticker: str, quote: Quote) -> None:
        """Buffer a quote, replacing an unsent older one of the same ticker."""
        if self._closing:
            return
        pending = self._pending
        if ticker in pending:
            self.stats.conflated += 1
        elif not self._oldest:
            self._oldest = self._loop.time()
        pending[ticker] = quote
        if not self._queued:
            self._queued = True
            self._flusher.due(self)

    def offer_if_absent(self, ticker: str, quote: Quote) -> None:
        """Buffer a snapshot quote unless a live one of the ticker is already waiting."""
        if ticker not in self._pending:
            self.offer(ticker, quote)

    def send_control(self, data: bytes) -> None:
        """Buffer a control message (in order, before the quotes of the same frame)."""
        if self._closing:
            return
        if not self._oldest:
            self._oldest = self._loop.time()
        self._control.append(data)
        if not self._queued:
            self._queued = True
            self._flusher.due(self)

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

    # -- writing (called by the flusher) ---------------------------------------------------

    def flush(self, now: float) -> None:
        """Write what is buffered as one frame, unless the previous one is not out yet."""
        self._queued = False
        if self._closing or self._in_flight is not None:
            return  # when the send in flight completes, it queues the socket again
        control, pending = self._control, self._pending
        if not control and not pending:
            return
        wire = self._wire
        if wire is not None:
            if wire.close_sent or wire.disconnected or wire.transport.is_closing():
                self._closing = True  # the reader ends the session
                return
            if not wire.writable.is_set():
                # The kernel buffer and the transport's are full: keep conflating until
                # the transport resumes writing.
                self._in_flight = self._loop.create_task(self._until_writable(wire))
                return
        quotes = len(pending)
        if not control and quotes == 1:
            for quote in pending.values():
                data = quote.alone()
        else:
            messages = [*control, *(q.data for q in pending.values())]
            data = text_frame(b"[" + b",".join(messages) + b"]")
            control.clear()
        pending.clear()  # reused, not replaced: no new containers per frame
        oldest, self._oldest = self._oldest, 0.0
        if wire is not None:
            wire.transport.write(data)
        else:
            self._in_flight = self._loop.create_task(self._send_asgi(data))
        self.last_write = now
        stats = self.stats
        stats.delivered += quotes
        stats.frames += 1
        DELIVERY_LATENCY.observe(now - oldest)

    def _requeue(self) -> None:
        self._in_flight = None
        if (self._control or self._pending) and not self._queued and not self._closing:
            self._queued = True
            self._flusher.due(self)

    async def _until_writable(self, wire: FrameWriter) -> None:
        await wire.writable.wait()
        self._requeue()

    async def _send_asgi(self, data: bytes) -> None:
        # The frame built for the wire, minus its header: the ASGI server frames it again.
        header = 2 if data[1] < 126 else (4 if data[1] == 126 else 10)
        try:
            await self.websocket.send({"type": "websocket.send", "text": data[header:].decode()})
        except (WebSocketDisconnect, OSError, RuntimeError):
            # The peer went away, or the socket is closing: the reader ends the session.
            self._closing = True
            self._in_flight = None
            return
        self._requeue()

    def _cancel_in_flight(self) -> asyncio.Task[None] | None:
        task, self._in_flight = self._in_flight, None
        if task is not None:
            task.cancel()
        return task

    async def close(self, code: int, reason: str, *, timeout: float = CLOSE_TIMEOUT) -> None:
        """Stop writing, drop what is unsent and send a close frame. Idempotent.

        A close frame cannot pass a full buffer: if the peer does not read within
        ``timeout`` seconds, the connection is aborted.
        """
        if self._closing and self._close_done:
            return
        self._closing = True
        self.stats.dropped += len(self._pending)
        self._pending.clear()
        self._control.clear()
        task = self._cancel_in_flight()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await asyncio.wait_for(
                self.websocket.send({"type": "websocket.close", "code": code, "reason": reason}),
                timeout,
            )
        except TimeoutError:
            logger.info("peer did not take the close frame (%s) in time; aborting", code)
            self.abort()
        except (WebSocketDisconnect, OSError, RuntimeError):
            pass
        finally:
            self._close_done = True

    async def stop(self) -> None:
        """Stop writing without a close frame (the peer is gone already)."""
        self._closing = True
        self.stats.dropped += len(self._pending)
        self._pending.clear()
        self._control.clear()
        task = self._cancel_in_flight()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._close_done = True

    def abort(self) -> None:
        """Drop the TCP connection now, without a closing handshake."""
        if self._wire is not None:
            self._wire.transport.abort()
        else:
            abort_transport(self.websocket)


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
