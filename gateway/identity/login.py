"""Logging in with a password, behind the brute-force guard."""

from __future__ import annotations

import asyncpg

from gateway.identity.domain import User
from gateway.identity.errors import InvalidCredentialsError, LoginUnavailableError
from gateway.identity.service import authenticate
from gateway.limits import LimiterUnavailableError
from gateway.limits.gcra import rate_limit_headers
from gateway.limits.login import LoginGuard
from shared.errors import RateLimitedError

Headers = list[tuple[bytes, bytes]]


def _as_dict(headers: Headers) -> dict[str, str]:
    return {name.decode(): value.decode() for name, value in headers}


async def login(
    conn: asyncpg.Connection, guard: LoginGuard | None, *, ip: str, username: str, password: str
) -> tuple[User, Headers]:
    """The user, and the rate-limit headers to answer with. Refuses with 429 when the
    IP or the account has failed too often, 503 when that cannot be checked."""
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
        user = await authenticate(conn, username, password)
    except InvalidCredentialsError as exc:
        if guard is not None:
            try:
                decision = await guard.charge_failure(ip, username)
                exc.headers.update(_as_dict(rate_limit_headers(decision)))
            except LimiterUnavailableError:
                pass  # the failure stands; the next attempt will be refused with 503
        raise
    return user, headers
