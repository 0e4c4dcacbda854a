"""JetStream: streams, deduplicated publishing and durable pull consumers.

Used through :class:`~shared.messaging.bus.Bus` (``ensure_stream``, ``publish_event``,
``consume``); the functions here take the bus as their first argument.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Generic, Literal

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from pydantic import ValidationError

from shared.messaging._wire import (
    MSG_ID_HEADER,
    Delivered,
    M,
    MessageHandler,
    bind_request_id,
    logger,
    outgoing_headers,
    validation_problems,
)
from shared.messaging.errors import MessagingUnavailableError, RequestTimeoutError

if TYPE_CHECKING:
    from shared.messaging.bus import Bus

_STREAM_NAME_IN_USE = 10058  # JetStream API error code: a stream with this name exists
_MAX_NAK_DELAY = 300.0
_MAX_FETCH_BACKOFF = 10.0


@dataclass(frozen=True, slots=True)
class PublishAck:
    """JetStream's acknowledgement of a publish.

    ``stream`` is the wire name of the stream that stored it; ``duplicate`` is True when
    the message id was already stored within the duplicate window (nothing was added).
    """

    stream: str
    sequence: int
    duplicate: bool


async def ensure_stream(
    bus: Bus,
    name: str,
    subjects: list[str],
    *,
    max_age: timedelta | None = None,
    max_bytes: int | None = None,
    duplicate_window: timedelta = timedelta(seconds=120),
    storage: Literal["file", "memory"] = "file",
    replicas: int = 1,
) -> str:
    """Create stream ``name`` on ``subjects`` or update it to this configuration."""
    config = StreamConfig(
        name=bus.namespace.stream(name),
        subjects=[bus.namespace.subject(subject) for subject in subjects],
        max_age=max_age.total_seconds() if max_age is not None else None,
        max_bytes=max_bytes,
        duplicate_window=duplicate_window.total_seconds(),
        storage=StorageType(storage),
        num_replicas=replicas,
    )
    manager = bus.client.jsm()
    try:
        await manager.add_stream(config)
    except nats.js.errors.BadRequestError as exc:
        if exc.err_code != _STREAM_NAME_IN_USE:
            raise
        await manager.update_stream(config)
    assert config.name is not None
    return config.name


async def delete_stream(bus: Bus, name: str) -> bool:
    """Delete stream ``name``; False if there was none."""
    try:
        return await bus.client.jsm().delete_stream(bus.namespace.stream(name))
    except nats.js.errors.NotFoundError:
        return False


async def publish(
    bus: Bus,
    subject: str,
    data: bytes,
    *,
    msg_id: str,
    stream_expected: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> PublishAck:
    """Publish ``data`` to JetStream with ``Nats-Msg-Id = msg_id`` and wait for the ack."""
    all_headers = outgoing_headers(headers) or {}
    all_headers[MSG_ID_HEADER] = msg_id
    try:
        ack = await bus.jetstream.publish(
            bus.namespace.subject(subject),
            data,
            timeout=timeout,
            stream=bus.namespace.stream(stream_expected) if stream_expected else None,
            headers=all_headers,
        )
    except nats.errors.TimeoutError as exc:
        raise RequestTimeoutError(
            "JetStream did not acknowledge in time.", subject=subject
        ) from exc
    except nats.js.errors.NoStreamResponseError as exc:
        raise MessagingUnavailableError("No stream stores this subject.", subject=subject) from exc
    except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError) as exc:
        raise MessagingUnavailableError(subject=subject) from exc
    return PublishAck(stream=ack.stream, sequence=ack.seq, duplicate=bool(ack.duplicate))


class Consumer(Generic[M]):
    """A running durable pull consumer. Build it with ``Bus.consume``; end it with ``stop()``."""

    def __init__(
        self,
        bus: Bus,
        subscription: JetStreamContext.PullSubscription,
        *,
        stream: str,
        durable: str,
        model: type[M],
        handler: MessageHandler[M],
        batch: int,
        max_deliver: int,
        nak_delay: float,
        fetch_timeout: float,
    ) -> None:
        self.stream = stream
        self.durable = durable
        self._bus = bus
        self._sub = subscription
        self._model = model
        self._handler = handler
        self._batch = batch
        self._max_deliver = max_deliver
        self._nak_delay = nak_delay
        self._fetch_timeout = fetch_timeout
        self._stopping = False
        self._handling = False
        self._task: asyncio.Task[None] | None = None
        self._stop_callbacks: list[Callable[[Consumer[M]], object]] = []

    @property
    def running(self) -> bool:
        """True until the consumer is stopped."""
        return self._task is not None and not self._task.done()

    def on_stop(self, callback: Callable[[Consumer[M]], object]) -> None:
        """Call ``callback(self)`` once stopped."""
        self._stop_callbacks.append(callback)

    def _start(self) -> None:
        self._task = asyncio.create_task(
            self._run(), name=f"jetstream-consumer:{self.stream}:{self.durable}"
        )

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop fetching, let the message in hand finish, and unsubscribe. Idempotent.

        Messages fetched but not yet handled are nak'ed so another instance gets them now.
        A handler still running after ``timeout`` seconds is cancelled.
        """
        if self._task is None:
            return
        task, self._task = self._task, None
        self._stopping = True
        if not self._handling:
            # Waiting on the server or backing off: nothing in hand, cancelling loses nothing.
            task.cancel()
        _, pending = await asyncio.wait({task}, timeout=timeout)
        if pending:
            logger.warning("consumer %s: handler did not finish in time; cancelled", self.durable)
            task.cancel()
            await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            logger.error("consumer %s crashed", self.durable, exc_info=task.exception())
        with contextlib.suppress(nats.errors.Error, ValueError):
            await self._sub.unsubscribe()
        for callback in self._stop_callbacks:
            callback(self)

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                messages = await self._sub.fetch(self._batch, timeout=self._fetch_timeout)
            except nats.errors.TimeoutError:
                continue  # nothing to do for now
            except (nats.errors.Error, OSError) as exc:
                failures += 1
                delay = min(0.5 * 2**failures, _MAX_FETCH_BACKOFF)
                logger.warning(
                    "consumer %s could not fetch (%s); retrying in %.1fs", self.durable, exc, delay
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            self._handling = True
            try:
                for index, msg in enumerate(messages):
                    if self._stopping:
                        await self._release(messages[index:])
                        break
                    await self._handle(msg)
            finally:
                self._handling = False

    async def _release(self, messages: list[Msg]) -> None:
        for msg in messages:
            with contextlib.suppress(nats.errors.Error):
                await msg.nak()

    async def _handle(self, msg: Msg) -> None:
        headers = msg.headers or {}
        request_id = bind_request_id(headers)
        metadata = msg.metadata
        subject = self._bus.namespace.logical(msg.subject)
        try:
            payload = self._model.model_validate_json(msg.data)
        except ValidationError as exc:
            logger.error(
                "consumer %s terminated an invalid message on %s (stream seq %s): %s",
                self.durable,
                subject,
                metadata.sequence.stream,
                validation_problems(exc),
            )
            await self._settle(msg.term())
            return
        delivered = Delivered(
            subject=subject,
            request_id=request_id,
            headers=headers,
            num_delivered=metadata.num_delivered,
            stream_sequence=metadata.sequence.stream,
        )
        try:
            await self._handler(payload, delivered)
        except Exception:
            attempt = metadata.num_delivered
            if self._max_deliver > 0 and attempt >= self._max_deliver:
                logger.exception(
                    "consumer %s gave up on a message on %s after %d deliveries",
                    self.durable,
                    subject,
                    attempt,
                )
                await self._settle(msg.term())
            else:
                delay = min(self._nak_delay * 2 ** (attempt - 1), _MAX_NAK_DELAY)
                logger.exception(
                    "consumer %s failed on a message on %s (delivery %d); retrying in %.1fs",
                    self.durable,
                    subject,
                    attempt,
                    delay,
                )
                await self._settle(msg.nak(delay=delay))
            return
        await self._settle(msg.ack())

    async def _settle(self, reply: Awaitable[None]) -> None:
        # A lost ack only means a redelivery, which idempotent handlers absorb.
        try:
            await reply
        except nats.errors.Error as exc:
            logger.warning("consumer %s could not settle a message: %s", self.durable, exc)


async def start_consumer(
    bus: Bus,
    stream: str,
    durable: str,
    filter_subject: str,
    model: type[M],
    handler: MessageHandler[M],
    *,
    batch: int,
    ack_wait: float,
    max_deliver: int,
    nak_delay: float,
    fetch_timeout: float,
) -> Consumer[M]:
    """Create or update the durable consumer and start its fetch loop."""
    wire_stream = bus.namespace.stream(stream)
    config = ConsumerConfig(
        name=durable,
        durable_name=durable,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=max_deliver,
        filter_subject=bus.namespace.subject(filter_subject),
    )
    await bus.client.jsm().add_consumer(wire_stream, config)
    subscription = await bus.jetstream.pull_subscribe_bind(durable=durable, stream=wire_stream)
    consumer = Consumer(
        bus,
        subscription,
        stream=stream,
        durable=durable,
        model=model,
        handler=handler,
        batch=batch,
        max_deliver=max_deliver,
        nak_delay=nak_delay,
        fetch_timeout=fetch_timeout,
    )
    consumer._start()
    return consumer
