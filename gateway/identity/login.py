"""Password checks behind the brute-force guard: logging in, and changing one's password
(a wrong current password is a failed login of that username)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from gateway.identity import service
from gateway.identity.domain import User
from gateway.identity.errors import InvalidCredentialsError, LoginUnavailableError
from gateway.identity.passwords import PasswordSlots
from gateway.limits import LimiterUnavailableError
from gateway.limits.gcra import rate_limit_headers
from gateway.limits.login import LoginGuard
from shared.db.transaction import RequestTransaction
from shared.errors import RateLimitedError

Headers = list[tuple[bytes, bytes]]
T = TypeVar("T")


def _as_dict(headers: Headers) -> dict[str, str]:
    return {name.decode(): value.decode() for name, value in headers}


async def guarded(
    guard: LoginGuard | None, *, ip: str, username: str, attempt: Callable[[], Awaitable[T]]
) -> tuple[T, Headers]:
    """``attempt()`` (a password check) behind the brute-force guard: refused with 429
    when the IP or the account has failed too often, 503 when that cannot be checked; an
    :class:`InvalidCredentialsError` it raises is charged to both budgets. Returns its
    result and the rate-limit headers to answer with."""
    headers: Headers = []
    if guard is not None:
        try:
            decision = await guard.check(ip, username)
        except LimiterUnavailableError:
            raise LoginUnavailableError() from None
        headers = rate_limit_headers(decision)
        if not decision.allowed:
            raise RateLimitedError(
                "Too many failed logins; wait before trying again.", headers=_as_dict(headers)
            )
    try:
        result = await attempt()
    except InvalidCredentialsError as exc:
        if guard is not None:
            try:
                decision = await guard.charge_failure(ip, username)
                exc.headers.update(_as_dict(rate_limit_headers(decision)))
            except LimiterUnavailableError:
                pass  # the failure stands; the next attempt will be refused with 503
        raise
    return result, headers


async def login(
    unit: RequestTransaction,
    slots: PasswordSlots,
    guard: LoginGuard | None,
    *,
    ip: str,
    username: str,
    password: str,
) -> tuple[User, Headers]:
    """The user, and the rate-limit headers to answer with (see :func:`guarded`). The
    request's connection is taken only once a password slot is free."""

    async def attempt() -> User:
        async with slots.slot():
            return await service.authenticate(await unit.connection(), username, password)

    return await guarded(guard, ip=ip, username=username, attempt=attempt)


async def change_password(
    conn: asyncpg.Connection,
    slots: PasswordSlots,
    guard: LoginGuard | None,
    *,
    ip: str,
    user: User,
    current: str,
    new: str,
) -> Headers:
    """Change ``user``'s password: a wrong ``current`` password is a failed login of that
    username, limited like one (the same buckets as ``/auth/token``)."""
    _, headers = await guarded(
        guard,
        ip=ip,
        username=user.username,
        attempt=lambda: _in_slot(slots, service.change_password(conn, user, current, new)),
    )
    return headers


async def _in_slot(slots: PasswordSlots, work: Awaitable[T]) -> T:
    async with slots.slot():
        return await work
