"""The transactional outbox and the consumer inbox.

Publishing an event that must not be lost takes two steps:

1. :func:`enqueue` writes it to the ``outbox`` table in the caller's transaction, next to
   the change it reports: both are committed, or neither.
2. :class:`OutboxRelay` publishes committed rows to JetStream with ``Nats-Msg-Id =
   event_id`` and marks them published. It wakes on a ``NOTIFY`` sent at commit, and polls
   as a fallback. A crash between publishing and marking republishes the row; JetStream
   drops it as a duplicate within the stream's duplicate window.

On the consuming side, :func:`claim_once` records ``(consumer, event_id)`` in the ``inbox``
table in the consumer's own transaction, so an event delivered twice is applied once.

The tables come from the migrations in ``shared.messaging.migrations`` and live in the
service's schema; every statement here relies on the connection's ``search_path``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import asyncpg
import orjson

from shared.context import REQUEST_ID_HEADER, get_request_id
from shared.messaging._wire import encode, logger
from shared.messaging.bus import Bus
from shared.messaging.errors import MessagingUnavailableError
from shared.messaging.events import Event

CHANNEL_PREFIX = "bourse_outbox."

_ENQUEUE = """
WITH queued AS (
    INSERT INTO outbox (event_id, subject, payload, headers)
    VALUES ($1, $2, $3::text::jsonb, $4::text::jsonb)
)
SELECT pg_notify($5 || current_schema(), '')
"""

_CLAIM_BATCH = """
SELECT id, event_id, subject, payload::text AS payload, headers::text AS headers
FROM outbox
WHERE published_at IS NULL
ORDER BY id
LIMIT $1
FOR UPDATE SKIP LOCKED
"""

_MARK_PUBLISHED = """
UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = NULL
WHERE id = ANY($1::bigint[])
"""

_MARK_FAILED = "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1"


async def enqueue(
    conn: asyncpg.Connection,
    subject: str,
    event: Event[Any],
    *,
    request_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Queue ``event`` for publication on ``subject`` (logical), in ``conn``'s transaction.

    The caller owns the transaction: nothing is published unless it commits. The
    current request id (or ``request_id``) travels with the event.
    """
    all_headers = dict(headers or {})
    rid = request_id if request_id is not None else get_request_id()
    if rid is not None:
        all_headers[REQUEST_ID_HEADER] = rid
    await conn.execute(
        _ENQUEUE,
        event.event_id,
        subject,
        encode(event).decode(),
        orjson.dumps(all_headers).decode(),
        CHANNEL_PREFIX,
    )


async def claim_once(conn: asyncpg.Connection, consumer: str, event_id: uuid.UUID | str) -> bool:
    """Record that ``consumer`` handles ``event_id``; False if it already did.

    Call it in the same transaction as the consumer's own writes: if that transaction
    rolls back, so does the claim, and the redelivered event is handled again.
    """
    claimed = await conn.fetchval(
        "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING RETURNING true",
        consumer,
        event_id if isinstance(event_id, uuid.UUID) else uuid.UUID(event_id),
    )
    return claimed is not None


async def prune_inbox(conn: asyncpg.Connection, older_than: timedelta) -> int:
    """Delete inbox entries older than ``older_than``; return how many.

    Keep them longer than any redelivery can take (the streams' ``max_age``).
    """
    status = await conn.execute(
        "DELETE FROM inbox WHERE processed_at < now() - $1::interval", older_than
    )
    return int(status.split()[-1])


class OutboxRelay:
    """Publishes the rows of ``outbox`` to JetStream, in id order, each once.

    ``pool`` must connect with the service's schema on its search path; one of its
    connections is held to LISTEN. Several relays may run on the same table (rows are
    claimed with ``FOR UPDATE SKIP LOCKED``); order across relays is then not guaranteed.
    When NATS fails, the rows stay and are retried with exponential backoff up to
    ``max_backoff`` seconds. With ``retention``, published rows older than that are
    deleted every ``cleanup_interval`` seconds.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        bus: Bus,
        *,
        channel: str | None = None,
        batch_size: int = 100,
        poll_interval: float = 1.0,
        publish_timeout: float = 5.0,
        max_backoff: float = 30.0,
        retention: timedelta | None = None,
        cleanup_interval: float = 3600.0,
    ) -> None:
        self._pool = pool
        self._bus = bus
        self._channel = channel
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._publish_timeout = publish_timeout
        self._max_backoff = max_backoff
        self._retention = retention
        self._cleanup_interval = cleanup_interval
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: Any = None  # the pooled connection we LISTEN on
        self.published = 0  # rows published by this relay (duplicates included)
        self.duplicates = 0  # of which JetStream already had within its window

    @property
    def channel(self) -> str | None:
        """The NOTIFY channel (known once started)."""
        return self._channel

    async def start(self) -> None:
        """Start relaying in the background."""
        if self._task is not None:
            return
        if self._channel is None:
            async with self._pool.acquire() as conn:
                self._channel = CHANNEL_PREFIX + str(await conn.fetchval("SELECT current_schema()"))
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay:{self._channel}")

    async def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand (at most ``timeout`` seconds), then stop. Idempotent."""
        if self._task is None:
            return
        task, self._task = self._task, None
        self._stopping.set()
        self._wake.set()
        _, pending = await asyncio.wait({task}, timeout=timeout)
        if pending:
            task.cancel()
            await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            logger.error("outbox relay crashed", exc_info=task.exception())
        await self._close_listener()

    @property
    def running(self) -> bool:
        """Whether the relay's task is alive (started and neither stopped nor crashed)."""
        return self._task is not None and not self._task.done()

    @property
    def listening_pid(self) -> int | None:
        """The server pid of the connection the relay LISTENs on, if it listens."""
        return self._listener.get_server_pid() if self._listening() else None

    def wake(self) -> None:
        """Look for rows now rather than at the next notification or poll."""
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish what is pending now, batch after batch; return how many were published.

        Raises if NATS fails (what was published before is marked).
        """
        total = 0
        while True:
            count, error = await self._publish_batch()
            total += count
            if error is not None:
                raise error
            if count < self._batch_size:
                return total

    async def _run(self) -> None:
        failures = 0
        next_cleanup = time.monotonic()
        while not self._stopping.is_set():
            await self._ensure_listener()
            self._wake.clear()
            try:
                await self.publish_pending()
                failures = 0
            except Exception as exc:
                failures += 1
                delay = min(self._poll_interval * 2 ** (failures - 1), self._max_backoff)
                logger.warning("outbox relay cannot publish (%s); retrying in %.1fs", exc, delay)
                # Notifications do not shorten a backoff: only time or stop() end it.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                continue
            if self._retention is not None and time.monotonic() >= next_cleanup:
                next_cleanup = time.monotonic() + self._cleanup_interval
                await self._cleanup(self._retention)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)

    async def _publish_batch(self) -> tuple[int, Exception | None]:
        if not self._bus.is_connected:
            return 0, MessagingUnavailableError("Not connected to NATS.")
        published: list[int] = []
        error: Exception | None = None
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM_BATCH, self._batch_size)
            for row in rows:
                try:
                    ack = await self._bus.publish_event_raw(
                        row["subject"],
                        row["payload"].encode(),
                        msg_id=str(row["event_id"]),
                        headers=orjson.loads(row["headers"]),
                        timeout=self._publish_timeout,
                    )
                except Exception as exc:
                    error = exc
                    await conn.execute(_MARK_FAILED, row["id"], f"{type(exc).__name__}: {exc}")
                    break
                published.append(row["id"])
                self.duplicates += ack.duplicate
            if published:
                await conn.execute(_MARK_PUBLISHED, published)
        self.published += len(published)
        return len(published), error

    async def _cleanup(self, retention: timedelta) -> None:
        try:
            async with self._pool.acquire() as conn:
                status = await conn.execute(
                    "DELETE FROM outbox WHERE published_at < now() - $1::interval", retention
                )
            logger.debug("outbox relay: cleaned up (%s)", status)
        except (OSError, asyncpg.PostgresError) as exc:
            logger.warning("outbox relay: clean-up failed: %s", exc)

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    def _listening(self) -> bool:
        if self._listener is None:
            return False
        try:
            return not self._listener.is_closed()
        except asyncpg.InterfaceError:
            # The connection broke (the server restarted) and the pool took it back: the
            # proxy we hold is detached. Listen again on a fresh one.
            return False

    async def _ensure_listener(self) -> None:
        if self._listening():
            return
        await self._close_listener()
        assert self._channel is not None
        try:
            conn = await self._pool.acquire()
        except (OSError, asyncpg.PostgresError) as exc:
            logger.warning("outbox relay: cannot LISTEN (%s); polling only", exc)
            return
        try:
            await conn.add_listener(self._channel, self._on_notify)
        except (OSError, asyncpg.PostgresError) as exc:
            logger.warning("outbox relay: cannot LISTEN (%s); polling only", exc)
            await self._pool.release(conn)
            return
        self._listener = conn

    async def _close_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is None:
            return
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            if not conn.is_closed():
                await conn.remove_listener(self._channel, self._on_notify)
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await self._pool.release(conn)
