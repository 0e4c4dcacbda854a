"""Password hashing with Argon2id at or above OWASP's minimum (m=19 MiB, t=2, p=1).

Hashing takes tens of milliseconds of CPU, so it runs in a worker thread, never on
the event loop, and at most :class:`PasswordSlots` hashes run at once: a burst of logins
waits for a slot before it takes a database connection, so it can neither starve the
pool for other routes nor outrun the CPU.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.identity.errors import PasswordWorkBusyError

_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

# Verified against when the user does not exist, so the answer takes as long either way.
_DUMMY_HASH = _HASHER.hash("bourse-dummy-password")

MAX_PASSWORD_LENGTH = 1024


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def _verify(password_hash: str | None, password: str) -> tuple[bool, bool]:
    try:
        _HASHER.verify(password_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False, False
    if password_hash is None:
        return False, False
    return True, _HASHER.check_needs_rehash(password_hash)


async def verify_password(password_hash: str | None, password: str) -> tuple[bool, bool]:
    """Whether ``password`` matches (False when there is no hash), and whether the hash
    should be upgraded to the current parameters."""
    return await asyncio.to_thread(_verify, password_hash, password)


class PasswordSlots:
    """At most ``concurrency`` password checks at once; a caller waits for a slot at most
    ``wait_seconds`` (then :class:`PasswordWorkBusyError`, a 503 with ``Retry-After``)."""

    def __init__(self, concurrency: int, wait_seconds: float) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._wait = wait_seconds

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._wait):
                await self._slots.acquire()
        except TimeoutError:
            raise PasswordWorkBusyError() from None
        try:
            yield
        finally:
            self._slots.release()


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)
