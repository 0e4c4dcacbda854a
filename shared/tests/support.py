"""Helpers for the shared library's tests."""

from __future__ import annotations

import asyncio
import inspect
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from shared.messaging import Bus, connect_bus


async def wait_until(check: Callable[[], object], timeout: float = 5.0) -> None:
    """Poll ``check`` (sync or async) until it is truthy, or fail after ``timeout`` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


NATS_URL = os.environ.get("BOURSE_TEST_NATS_URL", "nats://127.0.0.1:4222")


@asynccontextmanager
async def bus_with_stream(name: str, stream: str, subjects: list[str]) -> AsyncIterator[Bus]:
    """A bus under a fresh random prefix with an in-memory ``stream``, deleted on exit."""
    bus = await connect_bus(NATS_URL, name=name, prefix=f"t{uuid.uuid4().hex[:10]}")
    try:
        await bus.ensure_stream(stream, subjects, storage="memory")
        yield bus
    finally:
        await bus.delete_stream(stream)
        await bus.close()


class TcpProxy:
    """A TCP forwarder that can be cut and restored, to take a server (NATS, Redis,
    PostgreSQL) away from one client without touching the server itself."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        """Listen (again, on the same port once it has one); nothing if it listens."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        for task in self._pipes:
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for w in self._writers), return_exceptions=True)
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except ConnectionError:
            pass
        finally:
            sink.close()
