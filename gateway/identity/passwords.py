"""Password hashing with Argon2id at or above OWASP's minimum (m=19 MiB, t=2, p=1).

Hashing takes tens of milliseconds of CPU, so it runs in a worker thread, never on
the event loop.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

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


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)
