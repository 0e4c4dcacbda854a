"""The message bus: one NATS connection per process, typed publish/subscribe,
request/reply with the common error envelope, and JetStream streams and consumers.

Every subject and stream name given to a :class:`Bus` is logical; the bus adds its
prefix on the wire (see :class:`Namespace`) and hands logical subjects to handlers.
Every message carries the current request id in ``X-Request-ID``, and every handler runs
with the request id of the message it handles bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal, TypeVar

import nats.errors
import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.js import JetStreamContext
from pydantic import BaseModel, ValidationError

from shared.context import REQUEST_ID_HEADER
from shared.errors import AppError, ErrorTranslator, error_body
from shared.messaging import jetstream as _js
from shared.messaging._wire import (
    ERROR_HEADER,
    Delivered,
    M,
    MessageHandler,
    Namespace,
    bind_request_id,
    encode,
    logger,
    outgoing_headers,
    validation_problems,
)
from shared.messaging.errors import (
    InvalidResponseError,
    MessagingUnavailableError,
    NoRespondersError,
    RemoteError,
    RequestTimeoutError,
)
from shared.messaging.events import Event
from shared.messaging.jetstream import Consumer, PublishAck

R = TypeVar("R", bound=BaseModel)

RequestHandler = Callable[[M, Delivered], Awaitable[BaseModel]]


class Subscription:
    """A live subscription (or responder); ``unsubscribe()`` ends it."""

    def __init__(
        self,
        sub: NatsSubscription,
        inflight: set[asyncio.Task[None]] | None = None,
        on_end: Callable[[Subscription], None] | None = None,
    ) -> None:
        self._sub = sub
        self._inflight = inflight
        self._on_end = on_end

    async def unsubscribe(self) -> None:
        """Stop receiving now; wait for requests already being answered. Idempotent."""
        with contextlib.suppress(nats.errors.Error):
            await self._sub.unsubscribe()
        await self._finish()

    async def drain(self) -> None:
        """Stop receiving after handling what has already arrived. Idempotent."""
        with contextlib.suppress(nats.errors.Error):
            await self._sub.drain()  # type: ignore[no-untyped-call]  # nats-py leaves it unannotated
        await self._finish()

    async def _finish(self) -> None:
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._on_end is not None:
            self._on_end(self)


class Bus:
    """A NATS connection with a namespace. Build it with :func:`connect_bus`."""

    def __init__(self, client: NATS, *, name: str, namespace: Namespace) -> None:
        self._nc = client
        self._jsc = client.jetstream()
        self.name = name
        self.namespace = namespace
        self._consumers: set[Consumer[Any]] = set()
        self._responders: set[Subscription] = set()
        self._connection_listeners: list[Callable[[bool], None]] = []
        self._translators: tuple[ErrorTranslator, ...] = ()
        # Replicas of the streams :meth:`ensure_stream` declares unless told otherwise.
        self.stream_replicas = 1

    def translate_errors(self, translators: Sequence[ErrorTranslator]) -> None:
        """Answer requests whose handler raised one of ``translators``' exceptions (a lost
        database connection ...) with the error they translate to, as the HTTP app does,
        instead of a 500 and a traceback."""
        self._translators = tuple(translators)

    def _translate(self, exc: Exception) -> AppError | None:
        for classes, translate in self._translators:
            if isinstance(exc, classes):
                return translate(exc)
        return None

    def on_connection_change(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(False)`` when the connection is lost and ``listener(True)``
        when it is back (what a subscriber cannot tell from silence alone)."""
        self._connection_listeners.append(listener)

    def _connection_changed(self, connected: bool) -> None:
        for listener in self._connection_listeners:
            try:
                listener(connected)
            except Exception:  # one listener's bug must not stop the others
                logger.exception("connection listener failed")

    # -- plumbing -------------------------------------------------------------------------

    @property
    def client(self) -> NATS:
        """The underlying nats-py client, for what this class does not wrap."""
        return self._nc

    @property
    def jetstream(self) -> JetStreamContext:
        """The underlying JetStream context (wire names: use :meth:`stream_name`)."""
        return self._jsc

    @property
    def is_connected(self) -> bool:
        """True while connected (False while reconnecting, draining or closed)."""
        return self._nc.is_connected

    def subject(self, logical: str) -> str:
        """The wire subject of a logical subject."""
        return self.namespace.subject(logical)

    def stream_name(self, name: str) -> str:
        """The wire name of a logical stream name."""
        return self.namespace.stream(name)

    async def ping(self, timeout: float = 1.0) -> float:
        """Round trip to the server, in seconds; raise MessagingUnavailableError if none.

        Meant for readiness checks.
        """
        if not self._nc.is_connected:
            raise MessagingUnavailableError("Not connected to NATS.")
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self._nc.flush(), timeout)
        except (TimeoutError, nats.errors.Error) as exc:
            raise MessagingUnavailableError("NATS did not answer a ping.") from exc
        return time.perf_counter() - started

    async def drain(self) -> None:
        """Stop consumers, answer the requests already received, let subscriptions finish
        what they hold, flush, then close (what a service does on SIGTERM)."""
        await self._stop_consumers()
        await asyncio.gather(*(responder.drain() for responder in list(self._responders)))
        try:
            await self._nc.drain()
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError):
            await self._nc.close()

    async def close(self) -> None:
        """Stop consumers and close the connection now. Idempotent."""
        await self._stop_consumers()
        await self._nc.close()

    async def _stop_consumers(self) -> None:
        await asyncio.gather(*(consumer.stop() for consumer in list(self._consumers)))

    # -- core NATS ------------------------------------------------------------------------

    async def publish(
        self, subject: str, payload: BaseModel, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Publish ``payload`` as JSON on core NATS (at most once, no persistence)."""
        await self.publish_raw(subject, encode(payload), headers=headers)

    async def publish_raw(
        self, subject: str, data: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        """Publish bytes already encoded (hot paths that encode once for many subjects)."""
        try:
            await self._nc.publish(
                self.namespace.subject(subject), data, headers=outgoing_headers(headers)
            )
        except (
            nats.errors.ConnectionClosedError,
            nats.errors.ConnectionDrainingError,
            nats.errors.OutboundBufferLimitError,
        ) as exc:
            raise MessagingUnavailableError(subject=subject) from exc

    async def subscribe(
        self,
        subject: str,
        model: type[M],
        handler: MessageHandler[M],
        *,
        queue: str | None = None,
    ) -> Subscription:
        """Call ``handler(payload, delivered)`` for each message on ``subject``.

        Wildcards are allowed. Messages are handled one at a time, in order. A message
        whose payload does not validate as ``model`` is logged and dropped; an exception
        from the handler is logged; neither ends the subscription. With ``queue``, each
        message goes to one member of the queue group.
        """

        async def on_message(msg: Msg) -> None:
            headers = msg.headers or {}
            request_id = bind_request_id(headers)
            logical = self.namespace.logical(msg.subject)
            try:
                payload = model.model_validate_json(msg.data)
            except ValidationError as exc:
                logger.warning(
                    "dropped invalid message on %s: %s", logical, validation_problems(exc)
                )
                return
            try:
                await handler(payload, Delivered(logical, request_id, headers))
            except Exception:
                logger.exception("handler failed for a message on %s", logical)

        sub = await self._nc.subscribe(
            self.namespace.subject(subject), queue=queue or "", cb=on_message
        )
        return Subscription(sub)

    async def request(
        self,
        subject: str,
        payload: BaseModel,
        response_model: type[R],
        *,
        timeout: float = 2.0,
        headers: Mapping[str, str] | None = None,
    ) -> R:
        """Send a request and return the reply parsed as ``response_model``.

        Raises :class:`RemoteError` when the responder answers with an error envelope,
        :class:`RequestTimeoutError` / :class:`NoRespondersError` when nobody answers,
        :class:`InvalidResponseError` when the reply does not validate.
        """
        if not self._nc.is_connected:
            # Reconnecting: the request would sit in the buffer until its timeout and then
            # blame the responder; it is the bus that is away.
            raise MessagingUnavailableError("Not connected to NATS.", subject=subject)
        try:
            msg = await self._nc.request(
                self.namespace.subject(subject),
                encode(payload),
                timeout=timeout,
                headers=outgoing_headers(headers),
            )
        except nats.errors.NoRespondersError as exc:
            raise NoRespondersError(subject=subject) from exc
        except nats.errors.TimeoutError as exc:
            raise RequestTimeoutError(subject=subject) from exc
        except nats.errors.Error as exc:
            raise MessagingUnavailableError(subject=subject) from exc

        reply_headers = msg.headers or {}
        status = reply_headers.get(ERROR_HEADER)
        if status is not None:
            raise _remote_error(subject, status, msg.data, reply_headers)
        try:
            return response_model.model_validate_json(msg.data)
        except ValidationError as exc:
            logger.warning("invalid reply on %s: %s", subject, validation_problems(exc))
            raise InvalidResponseError() from exc

    async def serve(
        self,
        subject: str,
        request_model: type[M],
        handler: RequestHandler[M],
        *,
        queue: str | None = "rpc",
        max_concurrency: int = 64,
    ) -> Subscription:
        """Answer requests on ``subject`` with what ``handler(request, delivered)`` returns.

        Up to ``max_concurrency`` requests are handled at once. Instances sharing ``queue``
        share the load. The reply carries the request id; if the request does not validate
        (422) or the handler raises :class:`AppError` (its status) or anything else (500),
        the reply is the error envelope with header ``Bourse-Error-Status``.
        """
        slots = asyncio.Semaphore(max_concurrency)
        inflight: set[asyncio.Task[None]] = set()

        def done(task: asyncio.Task[None]) -> None:
            inflight.discard(task)
            slots.release()

        async def on_request(msg: Msg) -> None:
            await slots.acquire()
            task = asyncio.create_task(self._answer(msg, request_model, handler))
            inflight.add(task)
            task.add_done_callback(done)

        sub = await self._nc.subscribe(
            self.namespace.subject(subject), queue=queue or "", cb=on_request
        )
        responder = Subscription(sub, inflight, on_end=self._responders.discard)
        self._responders.add(responder)
        return responder

    async def _answer(self, msg: Msg, model: type[M], handler: RequestHandler[M]) -> None:
        headers = msg.headers or {}
        request_id = bind_request_id(headers)
        logical = self.namespace.logical(msg.subject)
        if not msg.reply:
            logger.warning("request on %s has no reply subject; ignored", logical)
            return
        reply_headers = {REQUEST_ID_HEADER: request_id}
        try:
            request = model.model_validate_json(msg.data)
        except ValidationError as exc:
            data = _error_reply(
                reply_headers,
                422,
                "VALIDATION_ERROR",
                "The request is not valid.",
                {"errors": validation_problems(exc)},
            )
        else:
            try:
                data = encode(await handler(request, Delivered(logical, request_id, headers)))
            except AppError as exc:
                if exc.status_code >= 500:
                    logger.warning(
                        "request on %s failed: %s %s", logical, exc.error_code, exc.message
                    )
                data = _error_reply(
                    reply_headers, exc.status_code, exc.error_code, exc.message, exc.details
                )
            except Exception as exc:
                known = self._translate(exc)
                if known is None:
                    logger.exception("handler failed for a request on %s", logical)
                    data = _error_reply(
                        reply_headers, 500, AppError.error_code, AppError.default_message
                    )
                else:  # a lost dependency: the requester gets the 503 a route would give
                    logger.warning(
                        "request on %s failed: %s %s", logical, known.error_code, known.message
                    )
                    data = _error_reply(
                        reply_headers,
                        known.status_code,
                        known.error_code,
                        known.message,
                        known.details,
                    )
        try:
            await self._nc.publish(msg.reply, data, headers=reply_headers)
        except nats.errors.Error as exc:
            logger.warning("could not reply on %s: %s", logical, exc)

    # -- JetStream ------------------------------------------------------------------------

    async def ensure_stream(
        self,
        name: str,
        subjects: list[str],
        *,
        max_age: timedelta | None = None,
        max_bytes: int | None = None,
        duplicate_window: timedelta = timedelta(seconds=120),
        storage: Literal["file", "memory"] = "file",
        replicas: int | None = None,
    ) -> str:
        """Create the stream, or update it to this configuration; return its wire name.
        ``replicas`` defaults to the bus's :attr:`stream_replicas`."""
        return await _js.ensure_stream(
            self,
            name,
            subjects,
            max_age=max_age,
            max_bytes=max_bytes,
            duplicate_window=duplicate_window,
            storage=storage,
            replicas=replicas or self.stream_replicas,
        )

    async def delete_stream(self, name: str) -> bool:
        """Delete a stream and its messages; False if it did not exist."""
        return await _js.delete_stream(self, name)

    async def publish_event(
        self,
        subject: str,
        event: Event[Any],
        *,
        stream_expected: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5.0,
    ) -> PublishAck:
        """Publish ``event`` to JetStream with ``Nats-Msg-Id = event_id``; wait for the ack.

        Within the stream's duplicate window, publishing the same event again is acked
        with ``duplicate=True`` and stores nothing.
        """
        return await _js.publish(
            self,
            subject,
            encode(event),
            msg_id=str(event.event_id),
            stream_expected=stream_expected,
            headers=headers,
            timeout=timeout,
        )

    async def publish_event_raw(
        self,
        subject: str,
        data: bytes,
        *,
        msg_id: str,
        stream_expected: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5.0,
    ) -> PublishAck:
        """:meth:`publish_event` for an event already encoded (as the outbox stores it)."""
        return await _js.publish(
            self,
            subject,
            data,
            msg_id=msg_id,
            stream_expected=stream_expected,
            headers=headers,
            timeout=timeout,
        )

    async def consume(
        self,
        stream: str,
        durable: str,
        filter_subject: str,
        model: type[M],
        handler: MessageHandler[M],
        *,
        batch: int = 10,
        ack_wait: float = 30.0,
        max_deliver: int = 5,
        nak_delay: float = 1.0,
        fetch_timeout: float = 5.0,
    ) -> Consumer[M]:
        """Run a durable pull consumer until its ``stop()`` (or this bus closes).

        Creates or updates the consumer ``durable`` on ``stream``. Each message is acked
        after ``handler`` returns; if the handler raises, it is nak'ed with a growing delay
        (``nak_delay`` doubled per delivery) and terminated after ``max_deliver``
        deliveries; a payload that does not validate is terminated at once. Handlers must
        be idempotent (see :func:`claim_once`) and finish within ``ack_wait`` seconds.
        """
        consumer = await _js.start_consumer(
            self,
            stream,
            durable,
            filter_subject,
            model,
            handler,
            batch=batch,
            ack_wait=ack_wait,
            max_deliver=max_deliver,
            nak_delay=nak_delay,
            fetch_timeout=fetch_timeout,
        )
        self._consumers.add(consumer)
        consumer.on_stop(self._consumers.discard)
        return consumer


def _error_reply(
    reply_headers: dict[str, str],
    status: int,
    error_code: str,
    message: str,
    details: dict[str, Any] | list[Any] | None = None,
) -> bytes:
    reply_headers[ERROR_HEADER] = str(status)
    return orjson.dumps(
        error_body(error_code, message, details, request_id=reply_headers[REQUEST_ID_HEADER])
    )


def _remote_error(subject: str, status: str, data: bytes, headers: Mapping[str, str]) -> AppError:
    try:
        body = orjson.loads(data)
        return RemoteError(
            status_code=int(status),
            error_code=str(body["error_code"]),
            message=str(body["message"]),
            details=body.get("details"),
            request_id=body.get("request_id") or headers.get(REQUEST_ID_HEADER),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        logger.warning("malformed error reply on %s", subject)
        return InvalidResponseError()


def _server(client: NATS) -> str:
    url = client.connected_url
    return url.netloc if url is not None else "?"


async def connect_bus(
    url: str | list[str],
    *,
    name: str,
    prefix: str = "",
    reconnect_time_wait: float = 1.0,
    connect_timeout: float = 2.0,
    first_connect_timeout: float | None = None,
) -> Bus:
    """Connect to NATS; the connection then reconnects forever, ``reconnect_time_wait`` apart.

    ``name`` identifies the client on the server (monitoring). ``prefix`` namespaces
    every subject and stream (tests). By default the first connection is also retried
    until it succeeds; with ``first_connect_timeout`` it gives up after that many seconds
    with :class:`MessagingUnavailableError`.
    """
    namespace = Namespace(prefix)
    client = NATS()

    # While NATS is away every reconnect attempt fails: warn once per outage, not per attempt.
    outage = False
    made: list[Bus] = []  # the bus, once built: told of connection changes

    async def on_error(exc: Exception) -> None:
        if outage:
            logger.debug("NATS error (%s): %s", name, exc)
        else:
            logger.warning("NATS error (%s): %s", name, exc)

    async def on_disconnected() -> None:
        nonlocal outage
        if client.is_closed:
            return  # a close we asked for; on_closed reports it
        outage = True
        logger.warning("disconnected from NATS (%s); reconnecting", name)
        if made:
            made[0]._connection_changed(False)

    async def on_reconnected() -> None:
        nonlocal outage
        outage = False
        logger.info("reconnected to NATS at %s (%s)", _server(client), name)
        if made:
            made[0]._connection_changed(True)

    async def on_closed() -> None:
        logger.info("NATS connection closed (%s)", name)

    # nats-py annotates these as int but sleeps on them: fractions of a second work.
    timing: dict[str, Any] = {
        "reconnect_time_wait": reconnect_time_wait,
        "connect_timeout": connect_timeout,
    }
    connecting = client.connect(
        servers=url,
        name=name,
        max_reconnect_attempts=-1,
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
        closed_cb=on_closed,
        **timing,
    )
    try:
        await asyncio.wait_for(connecting, first_connect_timeout)
    except TimeoutError as exc:
        await client.close()
        raise MessagingUnavailableError("Could not connect to NATS.") from exc
    logger.info("connected to NATS at %s (%s)", _server(client), name)
    made.append(Bus(client, name=name, namespace=namespace))
    return made[0]


__all__ = ["Bus", "Delivered", "RequestHandler", "Subscription", "connect_bus"]


def _messaging_error(_: Exception) -> MessagingUnavailableError:
    return MessagingUnavailableError()


# For :func:`shared.errors.install_error_handlers`: the client library's "not connected"
# errors, should one escape a route unwrapped, are a 503 naming NATS.
MESSAGING_ERRORS: ErrorTranslator = (
    (
        nats.errors.ConnectionClosedError,
        nats.errors.ConnectionDrainingError,
        nats.errors.ConnectionReconnectingError,
        nats.errors.NoServersError,
        nats.errors.OutboundBufferLimitError,
        nats.errors.StaleConnectionError,
    ),
    _messaging_error,
)
