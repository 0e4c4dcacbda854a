"""Identity use cases: users, logins and their refresh-token families, API keys.

No FastAPI here: callers pass the request's connection (already in the transaction the
request owns; nothing here commits or opens another) and get domain values or an
:mod:`gateway.identity.errors` error. A password check holds that one connection while
Argon2 runs in a worker thread: the pool bounds how many hashes run at once, and a burst
beyond it waits for the pool (then 503), never for a second connection.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from gateway.identity import repository
from gateway.identity.domain import (
    SCOPES,
    ApiKey,
    ApiKeyGrant,
    User,
    api_key_prefix,
    is_refresh_token,
    new_api_key,
    new_refresh_token,
    normalise_username,
    role_rank,
    secret_hash,
)
from gateway.identity.errors import (
    AccountDisabledError,
    ApiKeyNotFoundError,
    InvalidCredentialsError,
    InvalidPasswordError,
    InvalidRefreshTokenError,
    InvalidUsernameError,
    RefreshTokenReusedError,
    RoleExceedsOwnerError,
    UserDisabledError,
    UsernameTakenError,
    UserNotFoundError,
)
from gateway.identity.passwords import MAX_PASSWORD_LENGTH, hash_password_async, verify_password
from shared.auth import ROLES
from shared.db.transaction import acquire
from shared.errors import ValidationFailedError

MIN_PASSWORD_LENGTH = 8


def _check_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidPasswordError()


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValidationFailedError(f"Unknown role {role!r}.", details={"roles": list(ROLES)})


# --- users ------------------------------------------------------------------------------


async def create_user(conn: asyncpg.Connection, username: str, password: str, role: str) -> User:
    """Create a user; the username must be free and the password 8-1024 characters."""
    normalised = normalise_username(username)
    if normalised is None:
        raise InvalidUsernameError()
    _check_role(role)
    _check_password(password)
    created = await repository.insert(
        conn,
        user_id=uuid.uuid4(),
        username=normalised,
        password_hash=await hash_password_async(password),
        role=role,
    )
    if created is None:
        raise UsernameTakenError(f"The username {normalised!r} is taken.")
    return created


async def authenticate(conn: asyncpg.Connection, username: str, password: str) -> User:
    """The user whose credentials these are, or :class:`InvalidCredentialsError` --
    the same error, after the same work, whether or not the user exists."""
    normalised = normalise_username(username)
    user = None
    if normalised is not None and len(password) <= MAX_PASSWORD_LENGTH:
        user = await repository.find_by_username(conn, normalised)
    matches, needs_rehash = await verify_password(
        user.password_hash if user else None, password[:MAX_PASSWORD_LENGTH]
    )
    if user is None or not matches or user.disabled:
        raise InvalidCredentialsError()
    if needs_rehash:
        new_hash = await hash_password_async(password)
        await repository.update_password_hash(conn, user.id, new_hash)
    return user


async def get_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> User:
    user = await repository.find_by_id(conn, user_id)
    if user is None:
        raise UserNotFoundError()
    return user


async def active_account(conn: asyncpg.Connection, user_id: uuid.UUID, *, for_change: bool) -> User:
    """The caller's account as the database has it now, for a security-sensitive route:
    :class:`AccountDisabledError` when it is disabled (or gone), whatever its still
    unexpired token says. ``for_change``: the row stays share-locked until the request's
    transaction ends, so disabling the account waits for this request's change (and then
    revokes what it made), or this request waits for the disabling and sees it; a read
    takes no lock."""
    if for_change:
        user = await repository.find_by_id_for_share(conn, user_id)
    else:
        user = await repository.find_by_id(conn, user_id)
    if user is None or user.disabled:
        raise AccountDisabledError()
    return user


async def list_users(
    conn: asyncpg.Connection, *, after: str | None, limit: int, role: str | None
) -> list[User]:
    if role is not None:
        _check_role(role)
    return await repository.list_users(conn, after=after, limit=limit, role=role)


async def update_user(
    conn: asyncpg.Connection, user_id: uuid.UUID, *, role: str | None, disabled: bool | None
) -> User:
    """Change a user's role or disable them. Disabling revokes, in the same transaction,
    every session (refresh-token family) and every API key: enabling the account again
    brings none of them back."""
    if role is not None:
        _check_role(role)
    user = await repository.update_user(conn, user_id, role=role, disabled=disabled)
    if user is None:
        raise UserNotFoundError()
    if disabled:
        await repository.revoke_user_families(conn, user_id, "user disabled")
        await repository.revoke_user_api_keys(conn, user_id)
    return user


async def change_password(conn: asyncpg.Connection, user: User, current: str, new: str) -> None:
    """Change one's own password (knowing the current one); other sessions end. ``user``
    is the caller's account as :func:`active_account` found it."""
    _check_password(new)
    matches, _ = await verify_password(user.password_hash, current[:MAX_PASSWORD_LENGTH])
    if not matches:
        raise InvalidCredentialsError("The current password is not correct.")
    new_hash = await hash_password_async(new)
    await repository.update_password_hash(conn, user.id, new_hash)
    await repository.revoke_user_families(conn, user.id, "password changed")


# --- refresh tokens ---------------------------------------------------------------------


async def start_session(conn: asyncpg.Connection, user: User, ttl_seconds: int) -> str:
    """A new refresh-token family for ``user``; returns its first token."""
    family_id = uuid.uuid4()
    token = new_refresh_token()
    await repository.insert_family(conn, family_id, user.id)
    await repository.insert_refresh_token(
        conn,
        token_id=uuid.uuid4(),
        family_id=family_id,
        token_hash=secret_hash(token),
        expires_at=datetime.now(UTC) + timedelta(seconds=ttl_seconds),
    )
    return token


@dataclass(frozen=True)
class Rotation:
    user: User
    refresh_token: str


async def rotate(
    conn: asyncpg.Connection, token: str, *, ttl_seconds: int, grace_seconds: int
) -> Rotation:
    """Exchange a live refresh token for the next one of its family.

    A token used a second time more than ``grace_seconds`` after its first use means a
    copy exists: the whole family is revoked (:class:`RefreshTokenReusedError`). Within
    the grace, two clients racing with the same token both get a next token.
    """
    if not is_refresh_token(token):
        raise InvalidRefreshTokenError()
    digest = secret_hash(token)
    claimed = await repository.claim_refresh_token(conn, digest)
    if claimed is None:
        known = await repository.find_refresh_token(conn, digest)
        if known is None or known.family_revoked or known.used_at is None:
            raise InvalidRefreshTokenError()  # unknown, revoked or expired
        if datetime.now(UTC) - known.used_at > timedelta(seconds=grace_seconds):
            await repository.revoke_family(conn, known.family_id, "refresh token reused")
            # The revocation must stand although the request fails: commit, then answer.
            raise RefreshTokenReusedError(keep_changes=True)
        claimed = known  # a concurrent refresh within the grace
    user = await repository.find_by_id(conn, claimed.user_id)
    if user is None or user.disabled:
        await repository.revoke_family(conn, claimed.family_id, "user disabled")
        raise InvalidRefreshTokenError(keep_changes=True)
    following = new_refresh_token()
    await repository.insert_refresh_token(
        conn,
        token_id=uuid.uuid4(),
        family_id=claimed.family_id,
        token_hash=secret_hash(following),
        expires_at=datetime.now(UTC) + timedelta(seconds=ttl_seconds),
    )
    return Rotation(user, following)


async def logout(conn: asyncpg.Connection, token: str) -> None:
    """Revoke the family of ``token``, if it is one of ours; silent otherwise."""
    if not is_refresh_token(token):
        return
    known = await repository.find_refresh_token(conn, secret_hash(token))
    if known is not None:
        await repository.revoke_family(conn, known.family_id, "logout")


# --- API keys ---------------------------------------------------------------------------


async def create_api_key(
    conn: asyncpg.Connection,
    owner: User,
    *,
    name: str,
    role: str | None,
    scopes: Sequence[str],
    expires_at: datetime | None,
) -> tuple[ApiKey, str]:
    """A new key for ``owner`` and its secret (shown once). Its role defaults to the
    owner's and may not exceed it."""
    role = role or owner.role
    _check_role(role)
    if role_rank(role) > role_rank(owner.role):
        raise RoleExceedsOwnerError()
    unknown = set(scopes) - set(SCOPES)
    if unknown or not scopes:
        raise ValidationFailedError(
            "Scopes are a non-empty subset of read, write.", details={"scopes": list(SCOPES)}
        )
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise ValidationFailedError("The expiry must be in the future.")
    secret, prefix = new_api_key()
    key = await repository.insert_api_key(
        conn,
        key_id=uuid.uuid4(),
        user_id=owner.id,
        name=name,
        prefix=prefix,
        secret_hash=secret_hash(secret),
        role=role,
        scopes=sorted(set(scopes), key=SCOPES.index),
        expires_at=expires_at,
    )
    return key, secret


async def key_owner(conn: asyncpg.Connection, user_id: uuid.UUID) -> User:
    """Another user, for whom an admin creates a key: enabled, and share-locked like the
    caller in :func:`active_account` (a disabling waits, then revokes the new key too)."""
    user = await repository.find_by_id_for_share(conn, user_id)
    if user is None:
        raise UserNotFoundError()
    if user.disabled:
        raise UserDisabledError()
    return user


async def list_api_keys(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[ApiKey]:
    return await repository.list_api_keys(conn, user_id)


async def revoke_api_key(
    conn: asyncpg.Connection, key_id: uuid.UUID, *, actor_id: uuid.UUID, actor_is_admin: bool
) -> ApiKey:
    """Revoke a key: one's own, or anyone's for an admin. Another user's key is 'not
    found' to a non-admin, so key ids cannot be probed."""
    key = await repository.find_api_key(conn, key_id)
    if key is None or (key.user_id != actor_id and not actor_is_admin):
        raise ApiKeyNotFoundError()
    revoked = await repository.revoke_api_key(conn, key_id)
    assert revoked is not None
    return revoked


async def resolve_api_key(
    pool: asyncpg.Pool,  # lint-skip: request-takes-pool (the edge's key check, not a route)
    raw: str,
    *,
    acquire_timeout: float = 5.0,
) -> ApiKeyGrant | None:
    """What ``raw`` grants now, or None if it is not a live key.

    Called by the edge before any route runs (so no request connection exists yet): it
    takes one pooled connection for the lookup and gives it back before the request goes on.
    """
    prefix = api_key_prefix(raw)
    if prefix is None:
        return None
    async with acquire(pool, timeout=acquire_timeout) as conn:
        return await repository.use_api_key(conn, prefix, secret_hash(raw))
