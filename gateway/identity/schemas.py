"""API models of the identity routes (inputs forbid unknown fields: no mass assignment)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from gateway.identity.domain import USERNAME_PATTERN, ApiKey, User
from shared.auth import Role
from shared.pagination import CursorCodec, CursorPosition

Scope = Literal["read", "write"]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str = Field(description="Opaque; rotated on every use. Keep it secret.")
    refresh_expires_in: int


class RefreshRequest(_Input):
    refresh_token: str = Field(max_length=200)


class UserOut(BaseModel):
    id: UUID
    username: str
    role: Role
    disabled: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            username=user.username,
            role=user.role,
            disabled=user.disabled,
            created_at=user.created_at,
        )


class UserList(BaseModel):
    items: list[UserOut]
    next_cursor: str | None


class UserPosition(CursorPosition):
    """Where a page of users ends: the last (lower-case) username."""

    username: str = Field(pattern=USERNAME_PATTERN)


USERS_CURSOR = CursorCodec("identity.users", UserPosition)


class UserCreate(_Input):
    username: str = Field(pattern=USERNAME_PATTERN)
    password: str = Field(min_length=8, max_length=1024)
    role: Role = "viewer"


class UserUpdate(_Input):
    """What an admin may change about a user."""

    role: Role | None = None
    disabled: bool | None = None


class PasswordChange(_Input):
    """What a user may change about themselves: only the password."""

    current_password: str = Field(max_length=1024)
    new_password: str = Field(min_length=8, max_length=1024)


class ApiKeyCreate(_Input):
    name: str = Field(min_length=1, max_length=100)
    role: Role | None = Field(default=None, description="At most the owner's role; defaults to it.")
    scopes: list[Scope] = Field(default=["read", "write"], min_length=1)
    expires_at: datetime | None = None
    user_id: UUID | None = Field(
        default=None, description="Admins only: create the key for this user."
    )


class ApiKeyOut(BaseModel):
    id: UUID
    user_id: UUID
    name: str
    prefix: str
    role: Role
    scopes: list[Scope]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyOut:
        return cls(
            id=key.id,
            user_id=key.user_id,
            name=key.name,
            prefix=key.prefix,
            role=key.role,
            scopes=list(key.scopes),
            created_at=key.created_at,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
            last_used_at=key.last_used_at,
        )


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The key itself. Shown once: it is not stored.")


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]
