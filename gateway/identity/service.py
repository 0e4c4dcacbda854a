"""Identity use cases: create users, authenticate them."""

from __future__ import annotations

import uuid

import asyncpg

from gateway.identity import repository
from gateway.identity.domain import User, normalise_username
from gateway.identity.errors import (
    InvalidCredentialsError,
    InvalidUsernameError,
    UsernameTakenError,
)
from gateway.identity.passwords import MAX_PASSWORD_LENGTH, hash_password_async, verify_password
from shared.auth import ROLES
from shared.errors import ValidationFailedError

MIN_PASSWORD_LENGTH = 8


async def create_user(conn: asyncpg.Connection, username: str, password: str, role: str) -> User:
    """Create a user; the username must be free and the password 8-1024 characters."""
    normalised = normalise_username(username)
    if normalised is None:
        raise InvalidUsernameError()
    if role not in ROLES:
        raise ValidationFailedError(f"Unknown role {role!r}.", details={"roles": list(ROLES)})
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise ValidationFailedError(
            f"A password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters."
        )
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


async def authenticate(pool: asyncpg.Pool, username: str, password: str) -> User:
    """The user whose credentials these are, or :class:`InvalidCredentialsError` --
    the same error, after the same work, whether or not the user exists."""
    normalised = normalise_username(username)
    user = None
    if normalised is not None and len(password) <= MAX_PASSWORD_LENGTH:
        async with pool.acquire() as conn:
            user = await repository.find_by_username(conn, normalised)
    matches, needs_rehash = await verify_password(
        user.password_hash if user else None, password[:MAX_PASSWORD_LENGTH]
    )
    if user is None or not matches or user.disabled:
        raise InvalidCredentialsError()
    if needs_rehash:
        new_hash = await hash_password_async(password)
        async with pool.acquire() as conn:
            await repository.update_password_hash(conn, user.id, new_hash)
    return user
