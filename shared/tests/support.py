"""Helpers for the shared library's tests."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable


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
