"""A durable consumer that waits for its stream: the publisher may start after us.

Several parts consume another part's JetStream stream, which exists only once that
publisher has run. :class:`StreamAttachment` keeps trying to attach (every
``retry_seconds``, logging the wait once) in a background task, so start-up never blocks on
another part, and stops whatever it attached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, Generic

from shared.messaging._wire import M, MessageHandler
from shared.messaging.jetstream import Consumer

if TYPE_CHECKING:
    from shared.messaging.bus import Bus

logger = logging.getLogger("shared.messaging")


class StreamAttachment(Generic[M]):
    """``bus.consume(stream, durable, subject, model, handler, **options)`` once ``stream``
    exists; ``start()`` returns at once, ``attached`` says whether it has happened."""

    def __init__(
        self,
        bus: Bus,
        stream: str,
        durable: str,
        subject: str,
        model: type[M],
        handler: MessageHandler[M],
        *,
        retry_seconds: float = 30.0,
        **options: Any,
    ) -> None:
        self._bus = bus
        self._stream = stream
        self._durable = durable
        self._subject = subject
        self._model = model
        self._handler = handler
        self._retry = retry_seconds
        self._options = options
        self._consumer: Consumer[M] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def attached(self) -> bool:
        return self._consumer is not None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._attach(), name=f"consumer:{self._durable}")

    async def _attach(self) -> None:
        waiting_logged = False
        while True:
            try:
                self._consumer = await self._bus.consume(
                    self._stream,
                    self._durable,
                    self._subject,
                    self._model,
                    self._handler,
                    **self._options,
                )
                logger.info("consuming %s from stream %s", self._subject, self._stream)
                return
            except Exception as exc:  # the stream may not exist until its publisher runs
                if not waiting_logged:
                    logger.info("waiting for stream %s (%s): %s", self._stream, self._subject, exc)
                    waiting_logged = True
                await asyncio.sleep(self._retry)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
