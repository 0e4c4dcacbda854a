"""Users, refresh tokens and API keys as the identity context sees them. No I/O.

Secrets (refresh tokens, API keys) are 256-bit random values shown to their holder once.
Only their SHA-256 is stored: with that much entropy a slow hash adds nothing, and a fast
one lets every request look a key up in one indexed query.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from shared.auth import ROLES

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$"
_USERNAME = re.compile(USERNAME_PATTERN)

REFRESH_TOKEN_PREFIX = "brt_"
API_KEY_PREFIX = "bak_"
# bak_<8-char lookup prefix>_<43-char secret>: the prefix finds the row, the hash proves it.
_API_KEY = re.compile(r"^bak_([A-Za-z0-9]{8})_([A-Za-z0-9_-]{43})$")
_REFRESH_TOKEN = re.compile(r"^brt_[A-Za-z0-9_-]{43}$")
_ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

# What an API key may do: read (safe methods) and/or write (the others).
SCOPES = ("read", "write")


def normalise_username(raw: str) -> str | None:
    """The stored (lower-case) form of a username, or None if it is not a valid one."""
    return raw.lower() if _USERNAME.match(raw) else None


def role_rank(role: str) -> int:
    return ROLES.index(role) if role in ROLES else -1


def narrower_role(a: str, b: str) -> str:
    """The lesser of two roles (an API key never acts above its owner's current role)."""
    return a if role_rank(a) <= role_rank(b) else b


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _random_text(nbytes: int = 32) -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(nbytes)).rstrip(b"=").decode()


def new_refresh_token() -> str:
    return REFRESH_TOKEN_PREFIX + _random_text()


def is_refresh_token(text: str) -> bool:
    return _REFRESH_TOKEN.match(text) is not None


def new_api_key() -> tuple[str, str]:
    """A fresh key and its lookup prefix."""
    prefix = "".join(secrets.choice(_ALPHANUMERIC) for _ in range(8))
    return f"{API_KEY_PREFIX}{prefix}_{_random_text()}", prefix


def api_key_prefix(text: str) -> str | None:
    """The lookup prefix of a well-formed key, else None."""
    match = _API_KEY.match(text)
    return match[1] if match else None


@dataclass(frozen=True)
class User:
    id: UUID
    username: str
    password_hash: str
    role: str
    disabled: bool
    created_at: datetime


@dataclass(frozen=True)
class RefreshToken:
    """One refresh token of a family (a login and every token rotated from it)."""

    id: UUID
    family_id: UUID
    user_id: UUID
    expires_at: datetime
    used_at: datetime | None
    family_revoked: bool


@dataclass(frozen=True)
class ApiKey:
    id: UUID
    user_id: UUID
    name: str
    prefix: str
    role: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class ApiKeyGrant:
    """What a valid API key lets its bearer do right now: the key's role capped by its
    owner's current role."""

    key_id: UUID
    user_id: UUID
    username: str
    key_role: str
    owner_role: str
    scopes: tuple[str, ...]
    expires_at: datetime | None = None

    @property
    def role(self) -> str:
        return narrower_role(self.key_role, self.owner_role)
