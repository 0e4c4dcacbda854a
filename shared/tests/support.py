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
