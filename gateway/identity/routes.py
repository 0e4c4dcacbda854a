"""Identity routes: tokens, users, API keys. Thin: parse, call a use case, answer.

Who may call each is in :mod:`gateway.policy` (enforced before these run); the
dependencies re-check what matters here (admin-only, own resources).
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Form, Query
from starlette.responses import Response

from gateway.deps import (
    ActiveAccount,
    ActiveAdmin,
    ClientIp,
    CursorKeyDep,
    DbConn,
    DbTransaction,
    EdgeDep,
    PasswordSlotsDep,
)
from gateway.edge import Edge
from gateway.identity import login as passwords
from gateway.identity import service
from gateway.identity.domain import User
from gateway.identity.schemas import (
    USERS_CURSOR,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyOut,
    PasswordChange,
    RefreshRequest,
    TokenResponse,
    UserCreate,
    UserList,
    UserOut,
    UserPosition,
    UserUpdate,
)
from gateway.limits.login import LoginGuard
from shared.auth import Role
from shared.errors import PermissionDeniedError, ValidationFailedError, error_responses

router = APIRouter(prefix="/api/v1")

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _guard(edge: EdgeDep) -> LoginGuard | None:
    if edge.limiter is None:
        return None
    return LoginGuard(
        edge.limiter, per_ip=edge.quotas["login-ip"], per_user=edge.quotas["login-user"]
    )


def _tokens(edge: Edge, user: User, refresh_token: str) -> TokenResponse:
    return TokenResponse(
        access_token=edge.signer.issue(
            str(user.id), [user.role], extra={"username": user.username}
        ),
        expires_in=edge.signer.ttl_seconds,
        refresh_token=refresh_token,
        refresh_expires_in=edge.settings.refresh_token_ttl_seconds,
    )


@router.post(
    "/auth/token",
    response_model=TokenResponse,
    tags=["auth"],
    responses=error_responses(401, 422, 429, 503),
)
async def issue_token(
    response: Response,
    unit: DbTransaction,
    slots: PasswordSlotsDep,
    edge: EdgeDep,
    ip: ClientIp,
    grant_type: Annotated[str, Form(pattern="^(password|refresh_token)$")] = "password",
    username: Annotated[str, Form(max_length=256)] = "",
    password: Annotated[str, Form(max_length=4096)] = "",
    refresh_token: Annotated[str, Form(max_length=200)] = "",
    scope: Annotated[str, Form(max_length=200)] = "",
) -> TokenResponse:
    """OAuth2 token endpoint: the password grant (form fields ``username``, ``password``)
    returns an access token and a refresh token; the ``refresh_token`` grant rotates one.
    Failed password logins are limited per client IP and per username."""
    response.headers.update(_NO_STORE)
    settings = edge.settings
    if grant_type == "refresh_token":
        rotation = await service.rotate(
            await unit.connection(),
            refresh_token,
            ttl_seconds=settings.refresh_token_ttl_seconds,
            grace_seconds=settings.refresh_reuse_grace_seconds,
        )
        user, token = rotation.user, rotation.refresh_token
    else:
        if not username or not password:
            raise ValidationFailedError("username and password are required.")
        user, limit_headers = await passwords.login(
            unit, slots, _guard(edge), ip=ip, username=username, password=password
        )
        for name, value in limit_headers:
            response.headers[name.decode()] = value.decode()
        token = await service.start_session(
            await unit.connection(), user, settings.refresh_token_ttl_seconds
        )
    return _tokens(edge, user, token)


@router.post(
    "/auth/refresh",
    response_model=TokenResponse,
    tags=["auth"],
    responses=error_responses(401, 422, 429),
)
async def refresh(
    body: RefreshRequest, response: Response, conn: DbConn, edge: EdgeDep
) -> TokenResponse:
    """Exchange a refresh token for a new access token and the next refresh token. A
    refresh token works once: presenting it again revokes every token of its login."""
    response.headers.update(_NO_STORE)
    settings = edge.settings
    rotation = await service.rotate(
        conn,
        body.refresh_token,
        ttl_seconds=settings.refresh_token_ttl_seconds,
        grace_seconds=settings.refresh_reuse_grace_seconds,
    )
    return _tokens(edge, rotation.user, rotation.refresh_token)


@router.post("/auth/logout", status_code=204, tags=["auth"], responses=error_responses(422, 429))
async def logout(body: RefreshRequest, conn: DbConn) -> Response:
    """End a login: its refresh token and every one rotated from it stop working.
    Access tokens already issued expire on their own (within minutes)."""
    await service.logout(conn, body.refresh_token)
    return Response(status_code=204)


# --- users ------------------------------------------------------------------------------


@router.get(
    "/users/me", response_model=UserOut, tags=["users"], responses=error_responses(401, 422)
)
async def me(account: ActiveAccount) -> UserOut:
    """The caller's own account."""
    return UserOut.of(account.user)


@router.patch(
    "/users/me",
    status_code=204,
    tags=["users"],
    responses=error_responses(401, 403, 422, 429, 503),
)
async def change_my_password(
    body: PasswordChange,
    account: ActiveAccount,
    conn: DbConn,
    slots: PasswordSlotsDep,
    edge: EdgeDep,
    ip: ClientIp,
) -> Response:
    """Change one's own password (the only thing a user may change about themselves);
    every other login of the account ends. A wrong ``current_password`` counts as a
    failed login of the account: limited per username and IP like ``/auth/token``."""
    limit_headers = await passwords.change_password(
        conn,
        slots,
        _guard(edge),
        ip=ip,
        user=account.user,
        current=body.current_password,
        new=body.new_password,
    )
    return Response(
        status_code=204, headers={name.decode(): value.decode() for name, value in limit_headers}
    )


@router.get(
    "/users", response_model=UserList, tags=["users"], responses=error_responses(401, 403, 422)
)
async def list_users(
    _: ActiveAdmin,
    conn: DbConn,
    cursor_key: CursorKeyDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    role: Annotated[Role | None, Query()] = None,
) -> UserList:
    """Every user, ordered by username (cursor-paginated)."""
    after = USERS_CURSOR.decode(cursor_key, cursor).username if cursor else None
    users = await service.list_users(conn, after=after, limit=limit + 1, role=role)
    next_cursor = None
    if len(users) > limit:
        last = UserPosition(username=users[limit - 1].username)
        next_cursor = USERS_CURSOR.encode(cursor_key, last)
    return UserList(items=[UserOut.of(u) for u in users[:limit]], next_cursor=next_cursor)


@router.post(
    "/users",
    response_model=UserOut,
    status_code=201,
    tags=["users"],
    responses=error_responses(401, 403, 409, 422),
)
async def create_user(body: UserCreate, _: ActiveAdmin, conn: DbConn) -> UserOut:
    """Create a user (admins only): how people sign up."""
    return UserOut.of(await service.create_user(conn, body.username, body.password, body.role))


@router.get(
    "/users/{user_id}",
    response_model=UserOut,
    tags=["users"],
    responses=error_responses(401, 403, 404),
)
async def get_user(user_id: UUID, _: ActiveAdmin, conn: DbConn) -> UserOut:
    return UserOut.of(await service.get_user(conn, user_id))


@router.patch(
    "/users/{user_id}",
    response_model=UserOut,
    tags=["users"],
    responses=error_responses(401, 403, 404, 422),
)
async def update_user(
    user_id: UUID, body: UserUpdate, admin: ActiveAdmin, conn: DbConn, edge: EdgeDep
) -> UserOut:
    """Change a user's role or disable them (admins only). Disabling revokes their logins
    and their API keys (enabling them again restores neither); an admin cannot disable or
    demote themselves."""
    if user_id == admin.user.id and (body.disabled or body.role not in (None, "admin")):
        raise PermissionDeniedError("Admins cannot disable or demote themselves.")
    user = await service.update_user(conn, user_id, role=body.role, disabled=body.disabled)
    # Their keys' cached grants are stale now: drop them here; other instances follow
    # within GATEWAY_API_KEY_CACHE_SECONDS.
    edge.authenticator.forget_api_keys()
    return UserOut.of(user)


# --- API keys ---------------------------------------------------------------------------


@router.get(
    "/api-keys", response_model=ApiKeyList, tags=["api-keys"], responses=error_responses(401, 403)
)
async def list_keys(
    account: ActiveAccount, conn: DbConn, user_id: UUID | None = None
) -> ApiKeyList:
    """The caller's API keys (admins: ``user_id`` lists someone else's)."""
    owner = account.user.id
    if user_id is not None and user_id != owner:
        if not account.is_admin:
            raise PermissionDeniedError("Only admins may list other users' keys.")
        owner = user_id
    return ApiKeyList(items=[ApiKeyOut.of(k) for k in await service.list_api_keys(conn, owner)])


@router.post(
    "/api-keys",
    response_model=ApiKeyCreated,
    status_code=201,
    tags=["api-keys"],
    responses=error_responses(401, 403, 404, 409, 422),
)
async def create_key(
    body: ApiKeyCreate, response: Response, account: ActiveAccount, conn: DbConn
) -> ApiKeyCreated:
    """Create an API key for oneself (admins: for anyone enabled, with ``user_id``). The
    key is in this answer only; its role and scopes cannot exceed its owner's."""
    response.headers.update(_NO_STORE)
    owner = account.user
    if body.user_id is not None and body.user_id != owner.id:
        if not account.is_admin:
            raise PermissionDeniedError("Only admins may create keys for other users.")
        owner = await service.key_owner(conn, body.user_id)
    key, secret = await service.create_api_key(
        conn, owner, name=body.name, role=body.role, scopes=body.scopes, expires_at=body.expires_at
    )
    return ApiKeyCreated(**ApiKeyOut.of(key).model_dump(), key=secret)


@router.delete(
    "/api-keys/{key_id}", status_code=204, tags=["api-keys"], responses=error_responses(401, 404)
)
async def revoke_key(key_id: UUID, account: ActiveAccount, conn: DbConn, edge: EdgeDep) -> Response:
    """Revoke an API key (one's own; admins: anyone's). Effective at once on this gateway
    instance and within ``GATEWAY_API_KEY_CACHE_SECONDS`` (default 30 s) on the others."""
    await service.revoke_api_key(
        conn, key_id, actor_id=account.user.id, actor_is_admin=account.is_admin
    )
    edge.authenticator.forget_api_keys()
    return Response(status_code=204)
