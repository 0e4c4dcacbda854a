"""Users, as the identity context sees them. No I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$"
_USERNAME = re.compile(USERNAME_PATTERN)


def normalise_username(raw: str) -> str | None:
    """The stored (lower-case) form of a username, or None if it is not a valid one."""
    return raw.lower() if _USERNAME.match(raw) else None


@dataclass(frozen=True)
class User:
    id: UUID
    username: str
    password_hash: str
    role: str
    disabled: bool
    created_at: datetime
