"""Typed dependencies of the gateway's own routes.

The edge middleware has already authenticated, rate-limited and authorized the request
by the route table; these read its result. Security-sensitive routes (keys, passwords,
users) take :data:`ActiveAccount` or :data:`ActiveAdmin`, which also check the account
as the database has it now: a token outlives a disabling or a demotion by minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request

from gateway.authn import Principal
from gateway.edge import Edge, get_edge
from gateway.identity import service as identity
from gateway.identity.domain import User
from gateway.identity.passwords import PasswordSlots
from shared.auth import roles_reach
from shared.deps import CursorKeyDep, DbConn, DbTransaction
from shared.errors import AuthenticationError, PermissionDeniedError

# The request's one connection and its transaction; the key of pagination cursors.
__all__ = ["CursorKeyDep", "DbConn", "DbTransaction"]

EdgeDep = Annotated[Edge, Depends(get_edge)]


async def password_slots(request: Request) -> PasswordSlots:
    slots: PasswordSlots = request.app.state.password_slots
    return slots


PasswordSlotsDep = Annotated[PasswordSlots, Depends(password_slots)]


def current_principal(request: Request) -> Principal:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise AuthenticationError("A bearer token or an API key is required.")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


@dataclass(frozen=True, slots=True)
class Account:
    """The caller's credential and its account as the database has it now."""

    principal: Principal
    user: User

    @property
    def is_admin(self) -> bool:
        """Admin by its credential (an API key may be narrower) and by its current role
        (a demoted admin's unexpired token still says admin)."""
        return roles_reach(self.principal.roles, "admin") and roles_reach(
            (self.user.role,), "admin"
        )


_READS = frozenset({"GET", "HEAD"})


async def active_account(request: Request, principal: CurrentPrincipal, conn: DbConn) -> Account:
    """For security-sensitive routes (keys, passwords, users): the caller's account must
    be enabled now, not only when its token was issued (401 ``ACCOUNT_DISABLED``); for a
    change, it stays so until the change commits."""
    try:
        user_id = UUID(principal.user_id)
    except ValueError:
        raise AuthenticationError() from None
    for_change = request.method not in _READS
    return Account(principal, await identity.active_account(conn, user_id, for_change=for_change))


ActiveAccount = Annotated[Account, Depends(active_account)]


async def active_admin(account: ActiveAccount) -> Account:
    if not account.is_admin:
        raise PermissionDeniedError("This requires the admin role.")
    return account


ActiveAdmin = Annotated[Account, Depends(active_admin)]


def client_ip(request: Request) -> str:
    address: str | None = getattr(request.state, "client_ip", None)
    return address or "unknown"


ClientIp = Annotated[str, Depends(client_ip)]
