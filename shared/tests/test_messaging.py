"""The message bus against the real local NATS: core pub/sub, request/reply, JetStream.

Everything runs under a random prefix, so concurrent runs on one server do not meet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import nats.js.errors
import pytest
from pydantic import BaseModel

from shared.context import REQUEST_ID_HEADER, get_request_id, set_request_id
from shared.errors import NotFoundError, ServiceUnavailableError
from shared.messaging import (
    ERROR_HEADER,
    MSG_ID_HEADER,
    Bus,
    Delivered,
    Event,
    MessagingUnavailableError,
    NoRespondersError,
    RemoteError,
    RequestTimeoutError,
    StreamAttachment,
    connect_bus,
)
from shared.tests.support import NATS_URL, bus_with_stream, wait_until

STREAM = "EVENTS"


class Ping(BaseModel):
    n: int
    note: str = ""


class Sum(BaseModel):
    a: int
    b: int


class Total(BaseModel):
    total: int


class Happened(BaseModel):
    what: str


def happened(what: str) -> Event[Happened]:
    return Event[Happened](event_type="thing.happened", source="test", data=Happened(what=what))


@pytest.fixture(scope="module")
async def bus() -> AsyncIterator[Bus]:
    async with bus_with_stream("test-messaging", STREAM, ["demo.events.>"]) as bus:
        yield bus


@pytest.fixture(autouse=True)
def no_request_id() -> None:
    set_request_id(None)


# -- core NATS -----------------------------------------------------------------------------


async def test_publish_subscribe_roundtrip_propagates_request_id(bus: Bus) -> None:
    received: asyncio.Queue[tuple[Ping, Delivered, str | None]] = asyncio.Queue()

    async def handler(payload: Ping, message: Delivered) -> None:
        await received.put((payload, message, get_request_id()))

    sub = await bus.subscribe("demo.ping.*", Ping, handler)
    try:
        set_request_id("req-roundtrip-1")
        await bus.publish("demo.ping.A", Ping(n=1, note="hi"))
        payload, message, bound = await asyncio.wait_for(received.get(), 2)
        assert payload == Ping(n=1, note="hi")
        assert message.subject == "demo.ping.A"  # logical, without the prefix
        assert message.request_id == bound == "req-roundtrip-1"
        assert message.headers[REQUEST_ID_HEADER] == "req-roundtrip-1"

        # Without a request id, the handler still runs with a fresh one bound.
        set_request_id(None)
        await bus.publish("demo.ping.B", Ping(n=2))
        _, message, bound = await asyncio.wait_for(received.get(), 2)
        assert message.subject == "demo.ping.B"
        assert bound == message.request_id
        assert len(message.request_id) == 32
    finally:
        await sub.unsubscribe()


async def test_prefix_isolates_subjects(bus: Bus) -> None:
    assert bus.subject("demo.x") == f"{bus.namespace.prefix}.demo.x"
    assert bus.stream_name("EVENTS") == f"{bus.namespace.prefix.upper()}_EVENTS"
    other = await connect_bus(NATS_URL, name="test-other", prefix="")
    received: list[Ping] = []

    async def handler(payload: Ping, _: Delivered) -> None:
        received.append(payload)

    sub = await bus.subscribe("demo.iso", Ping, handler)
    try:
        await other.publish("demo.iso", Ping(n=1))  # unprefixed: another namespace
        await bus.publish("demo.iso", Ping(n=2))
        await wait_until(lambda: bool(received))
        await bus.ping()
        assert received == [Ping(n=2)]
    finally:
        await sub.unsubscribe()
        await other.close()


async def test_invalid_payload_is_dropped_and_subscription_lives(bus: Bus) -> None:
    received: asyncio.Queue[Ping] = asyncio.Queue()
    calls = 0

    async def handler(payload: Ping, _: Delivered) -> None:
        nonlocal calls
        calls += 1
        if payload.n == 13:
            raise RuntimeError("handler bug")  # logged, subscription keeps going
        await received.put(payload)

    sub = await bus.subscribe("demo.strict", Ping, handler)
    try:
        await bus.publish_raw("demo.strict", b"not json at all")
        await bus.publish_raw("demo.strict", b'{"n": "not a number"}')
        await bus.publish("demo.strict", Ping(n=13))
        await bus.publish("demo.strict", Ping(n=7))
        assert await asyncio.wait_for(received.get(), 2) == Ping(n=7)
        assert calls == 2
    finally:
        await sub.unsubscribe()


async def test_queue_group_delivers_each_message_once(bus: Bus) -> None:
    seen: list[tuple[str, int]] = []

    def member(name: str) -> Callable[[Ping, Delivered], Awaitable[None]]:
        async def handler(payload: Ping, _: Delivered) -> None:
            seen.append((name, payload.n))

        return handler

    subs = [await bus.subscribe("demo.work", Ping, member(x), queue="workers") for x in "ab"]
    try:
        for n in range(20):
            await bus.publish("demo.work", Ping(n=n))
        await wait_until(lambda: len(seen) >= 20)
        await bus.ping()
        assert sorted(n for _, n in seen) == list(range(20))
    finally:
        for sub in subs:
            await sub.unsubscribe()


# -- request/reply -------------------------------------------------------------------------


async def test_request_reply_returns_the_response_and_propagates_request_id(bus: Bus) -> None:
    seen_ids: list[str | None] = []

    async def add(request: Sum, message: Delivered) -> Total:
        seen_ids.append(get_request_id())
        assert message.subject == "demo.rpc.add"
        return Total(total=request.a + request.b)

    server = await bus.serve("demo.rpc.add", Sum, add)
    try:
        set_request_id("req-rpc-1")
        assert await bus.request("demo.rpc.add", Sum(a=2, b=3), Total) == Total(total=5)
        assert seen_ids == ["req-rpc-1"]

        # The reply carries the request id back.
        raw = await bus.client.request(
            bus.subject("demo.rpc.add"),
            b'{"a": 1, "b": 1}',
            timeout=2,
            headers={REQUEST_ID_HEADER: "req-rpc-2"},
        )
        assert raw.headers is not None
        assert raw.headers[REQUEST_ID_HEADER] == "req-rpc-2"
        assert ERROR_HEADER not in raw.headers

        # Requests are served concurrently.
        results = await asyncio.gather(
            *(bus.request("demo.rpc.add", Sum(a=i, b=i), Total) for i in range(50))
        )
        assert [r.total for r in results] == [2 * i for i in range(50)]
    finally:
        await server.unsubscribe()


async def test_remote_app_error_becomes_remote_error(bus: Bus) -> None:
    async def lookup(request: Ping, _: Delivered) -> Ping:
        if request.n == 0:
            raise NotFoundError("No such thing.", details={"n": request.n})
        if request.n == 1:
            raise RuntimeError("boom")
        return request

    server = await bus.serve("demo.rpc.lookup", Ping, lookup)
    try:
        set_request_id("req-rpc-err")
        with pytest.raises(RemoteError) as caught:
            await bus.request("demo.rpc.lookup", Ping(n=0), Ping)
        error = caught.value
        assert (error.status_code, error.error_code) == (404, "NOT_FOUND")
        assert error.message == "No such thing."
        assert error.details == {"n": 0}
        assert error.request_id == "req-rpc-err"

        # A request that does not validate: 422 with the field named, the value not echoed.
        with pytest.raises(RemoteError) as caught:
            await bus.request("demo.rpc.lookup", Sum(a=1, b=2), Ping)
        assert (caught.value.status_code, caught.value.error_code) == (422, "VALIDATION_ERROR")
        assert isinstance(caught.value.details, dict)
        assert caught.value.details["errors"][0]["loc"] == ["n"]

        # An unexpected exception: a generic 500, the details stay in the responder's log.
        with pytest.raises(RemoteError) as caught:
            await bus.request("demo.rpc.lookup", Ping(n=1), Ping)
        assert (caught.value.status_code, caught.value.error_code) == (500, "INTERNAL_ERROR")
        assert "boom" not in caught.value.message
    finally:
        await server.unsubscribe()


async def test_no_responders_and_timeout_are_distinct_unavailable_errors(bus: Bus) -> None:
    with pytest.raises(NoRespondersError) as no_one:
        await bus.request("demo.rpc.nobody", Ping(n=1), Ping, timeout=1)
    assert isinstance(no_one.value, ServiceUnavailableError)

    release = asyncio.Event()

    async def slow(request: Ping, _: Delivered) -> Ping:
        await release.wait()
        return request

    server = await bus.serve("demo.rpc.slow", Ping, slow)
    try:
        with pytest.raises(RequestTimeoutError) as late:
            await bus.request("demo.rpc.slow", Ping(n=1), Ping, timeout=0.2)
        assert isinstance(late.value, ServiceUnavailableError)
        assert late.value.status_code == 503
    finally:
        release.set()
        await server.unsubscribe()


# -- JetStream -----------------------------------------------------------------------------


async def stream_count(bus: Bus, subject: str | None = None) -> int:
    wire = bus.stream_name(STREAM)
    if subject is None:
        info = await bus.client.jsm().stream_info(wire)
        return info.state.messages
    info = await bus.client.jsm().stream_info(wire, subjects_filter=bus.subject(subject))
    return (info.state.subjects or {}).get(bus.subject(subject), 0)


async def test_ensure_stream_is_idempotent(bus: Bus) -> None:
    name = await bus.ensure_stream("SCRATCH", ["demo.scratch.>"], storage="memory")
    assert name == bus.stream_name("SCRATCH")
    try:
        # Same again, then changed: both succeed (create or update).
        await bus.ensure_stream("SCRATCH", ["demo.scratch.>"], storage="memory")
        await bus.ensure_stream(
            "SCRATCH", ["demo.scratch.>"], storage="memory", max_age=timedelta(hours=1)
        )
        info = await bus.client.jsm().stream_info(name)
        assert info.config.max_age == 3600
        assert info.config.duplicate_window == 120
    finally:
        assert await bus.delete_stream("SCRATCH")
    assert not await bus.delete_stream("SCRATCH")


async def test_streams_get_the_bus_replica_count_unless_told(bus: Bus) -> None:
    # One server here: a single copy is what it can hold, and asking the bus for more
    # reaches the server (which refuses three copies on one node).
    name = await bus.ensure_stream("COPIES", ["demo.copies.>"], storage="memory")
    try:
        assert (await bus.client.jsm().stream_info(name)).config.num_replicas == 1
        bus.stream_replicas = 3
        with pytest.raises(nats.js.errors.ServerError) as refused:
            await bus.ensure_stream("COPIES", ["demo.copies.>"], storage="memory")
        assert refused.value.description == "replicas > 1 not supported in non-clustered mode"
        await bus.ensure_stream("COPIES", ["demo.copies.>"], storage="memory", replicas=1)
    finally:
        bus.stream_replicas = 1
        assert await bus.delete_stream("COPIES")


async def test_publish_event_deduplicates_on_event_id(bus: Bus) -> None:
    event = happened("x")
    set_request_id("req-js-1")
    first = await bus.publish_event("demo.events.dedupe", event, stream_expected=STREAM)
    again = await bus.publish_event("demo.events.dedupe", event)
    assert not first.duplicate
    assert again.duplicate
    assert again.sequence == first.sequence
    assert first.stream == bus.stream_name(STREAM)
    assert await stream_count(bus, "demo.events.dedupe") == 1

    stored = await bus.client.jsm().get_msg(bus.stream_name(STREAM), first.sequence)
    assert stored.headers is not None
    assert stored.headers[MSG_ID_HEADER] == str(event.event_id)
    assert stored.headers[REQUEST_ID_HEADER] == "req-js-1"
    assert stored.data is not None
    assert Event[Happened].model_validate_json(stored.data) == event


async def test_durable_consumer_acks_redelivers_and_terminates(bus: Bus) -> None:
    deliveries: list[tuple[str, int, str]] = []
    done = asyncio.Event()

    async def handler(event: Event[Happened], message: Delivered) -> None:
        deliveries.append((event.data.what, message.num_delivered, message.request_id))
        if event.data.what == "flaky" and message.num_delivered == 1:
            raise RuntimeError("transient failure")
        done.set()

    consumer = await bus.consume(
        STREAM,
        "durable-test",
        "demo.events.consumed",
        Event[Happened],
        handler,
        nak_delay=0.05,
        ack_wait=5,
        max_deliver=3,
        fetch_timeout=1,
    )
    wire = bus.stream_name(STREAM)
    try:
        set_request_id("req-consume")
        # Not an Event: terminated without reaching the handler, never redelivered.
        await bus.publish_event_raw("demo.events.consumed", b'{"bad": true}', msg_id="bad-1")
        await bus.publish_event(
            "demo.events.consumed",
            happened("flaky"),
        )
        await asyncio.wait_for(done.wait(), 5)
        assert deliveries == [("flaky", 1, "req-consume"), ("flaky", 2, "req-consume")]

        async def settled() -> bool:
            info = await bus.client.jsm().consumer_info(wire, "durable-test")
            return bool(info.num_ack_pending == 0 and info.num_pending == 0)

        await wait_until(settled)
    finally:
        await consumer.stop()
    assert not consumer.running

    # Durable: what is published while it is stopped is handled when it comes back.
    done.clear()
    await bus.publish_event(
        "demo.events.consumed",
        happened("later"),
    )
    consumer = await bus.consume(
        STREAM, "durable-test", "demo.events.consumed", Event[Happened], handler, fetch_timeout=1
    )
    try:
        await asyncio.wait_for(done.wait(), 5)
        assert deliveries[-1][:2] == ("later", 1)
        assert len(deliveries) == 3
    finally:
        await consumer.stop()
        await bus.client.jsm().delete_consumer(wire, "durable-test")


async def test_an_attachment_waits_for_its_stream_then_consumes(bus: Bus) -> None:
    """A consumer of a stream another part publishes: started before the stream exists,
    it attaches once it does and handles what is published; stop() ends it."""
    seen: list[str] = []

    async def handler(event: Event[Happened], _: Delivered) -> None:
        seen.append(event.data.what)

    attachment = StreamAttachment(
        bus, "LATER", "attach-test", "later.happened", Event[Happened], handler, retry_seconds=0.1
    )
    await attachment.start()
    try:
        await asyncio.sleep(0.3)
        assert not attachment.attached  # no stream yet: still waiting, start() did not block
        await bus.ensure_stream("LATER", ["later.>"], storage="memory")
        await wait_until(lambda: attachment.attached, timeout=5)
        await bus.publish_event("later.happened", happened("after"))
        await wait_until(lambda: seen == ["after"], timeout=5)
    finally:
        await attachment.stop()
        await bus.delete_stream("LATER")


async def test_consumer_gives_up_after_max_deliver(bus: Bus) -> None:
    attempts: list[int] = []

    async def always_fails(_: Event[Happened], message: Delivered) -> None:
        attempts.append(message.num_delivered)
        raise RuntimeError("permanent failure")

    consumer = await bus.consume(
        STREAM,
        "durable-give-up",
        "demo.events.doomed",
        Event[Happened],
        always_fails,
        nak_delay=0.01,
        max_deliver=2,
        fetch_timeout=1,
    )
    try:
        await bus.publish_event(
            "demo.events.doomed",
            happened("x"),
        )
        await wait_until(lambda: len(attempts) >= 2)
        await asyncio.sleep(0.2)
        assert attempts == [1, 2]
    finally:
        # Bus.close() would stop it too; stop() twice is harmless.
        await consumer.stop()
        await consumer.stop()
        await bus.client.jsm().delete_consumer(bus.stream_name(STREAM), "durable-give-up")


async def test_drain_answers_requests_in_hand_then_closes(bus: Bus) -> None:
    own = await connect_bus(NATS_URL, name="test-drain", prefix=bus.namespace.prefix)
    started = asyncio.Event()

    async def ignore(_: Event[Happened], __: Delivered) -> None:
        return None

    async def slow_echo(request: Ping, _: Delivered) -> Ping:
        started.set()
        await asyncio.sleep(0.2)
        return request

    consumer = await own.consume(
        STREAM, "durable-drain", "demo.events.drain", Event[Happened], ignore, fetch_timeout=1
    )
    await own.serve("demo.drain", Ping, slow_echo)
    assert await own.ping() >= 0
    pending = asyncio.create_task(bus.request("demo.drain", Ping(n=5), Ping))
    await started.wait()
    await own.drain()
    assert await pending == Ping(n=5)  # answered before the connection closed
    assert not consumer.running
    assert not own.is_connected
    with pytest.raises(MessagingUnavailableError):
        await own.ping()
    with pytest.raises(MessagingUnavailableError):
        await own.publish("demo.drain", Ping(n=1))
    await bus.client.jsm().delete_consumer(bus.stream_name(STREAM), "durable-drain")


async def test_first_connect_can_give_up() -> None:
    with pytest.raises(MessagingUnavailableError):
        await connect_bus("nats://127.0.0.1:1", name="test-unreachable", first_connect_timeout=0.3)
