"""Who is calling: a bearer access token or an API key becomes a :class:`Principal`.

Services see one kind of credential: the caller's access token as it came, or, for an
API key, a short-lived internal JWT the gateway mints with the same claims shape
(``sub`` = user id, ``roles``, ``token_use=access``, plus ``scope`` and ``key_id``).

Both lookups are cached in this process: a verified token until it expires (in
:class:`shared.jwt.TokenVerifier`), an API key for ``api_key_cache_seconds`` (so a
revocation takes effect within that time, at most a minute), together with the internal
token minted for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncpg

from gateway.identity import service as identity
from gateway.identity.domain import ApiKeyGrant
from gateway.identity.errors import InvalidApiKeyError
from shared.errors import AuthenticationError
from shared.jwt import TokenSigner, TokenVerifier

API_KEY_HEADER = b"x-api-key"
_FULL_SCOPES = frozenset({"read", "write"})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    user_id: str
    roles: tuple[str, ...]
    scopes: frozenset[str]
    token: str  # what services receive as ``Authorization: Bearer``
    api_key_id: str | None = None
    username: str | None = None

    @property
    def rate_key(self) -> str:
        """Whose bucket a request is charged to."""
        return f"k:{self.api_key_id}" if self.api_key_id else f"u:{self.user_id}"


@dataclass(slots=True)
class _CachedKey:
    principal: Principal | None
    checked_at: float
    token_expires_at: float
    key_expires_at: float  # wall clock; inf when the key has no expiry


class Authenticator:
    def __init__(
        self,
        *,
        verifier: TokenVerifier,
        signer: TokenSigner,
        pool: asyncpg.Pool,
        api_key_cache_seconds: float,
        internal_token_ttl_seconds: int,
        max_cached_keys: int = 10_000,
    ) -> None:
        self.verifier = verifier
        self.signer = signer
        self._pool = pool
        self._key_ttl = api_key_cache_seconds
        self._internal_ttl = internal_token_ttl_seconds
        self._keys: dict[str, _CachedKey] = {}
        self._max_cached_keys = max_cached_keys

    async def from_token(self, token: str) -> Principal:
        claims = await self.verifier.verify(token)
        return Principal(
            user_id=claims.subject,
            roles=claims.roles,
            # A user's own token may do everything their role allows; narrower scopes
            # in a token (internal tokens of API keys) are honoured.
            scopes=frozenset(claims.scopes) if claims.scopes else _FULL_SCOPES,
            token=token,
            api_key_id=claims.raw.get("key_id"),
            username=claims.raw.get("username"),
        )

    async def from_api_key(self, raw: str) -> Principal:
        now = time.monotonic()
        cached = self._keys.get(raw)
        if (
            cached is not None
            and now - cached.checked_at < self._key_ttl
            # Re-mint before the internal token reaches half its life.
            and (cached.principal is None or now < cached.token_expires_at)
        ):
            if cached.principal is not None and time.time() >= cached.key_expires_at:
                del self._keys[raw]  # expired while cached: no grace
                raise InvalidApiKeyError()
            if cached.principal is None:
                raise InvalidApiKeyError()
            return cached.principal
        grant = await identity.resolve_api_key(self._pool, raw)
        principal = self._principal_for(grant) if grant is not None else None
        if len(self._keys) >= self._max_cached_keys:
            self._keys.clear()  # rare; refilled on demand
        expiry = grant.expires_at.timestamp() if grant and grant.expires_at else float("inf")
        self._keys[raw] = _CachedKey(principal, now, now + self._internal_ttl / 2, expiry)
        if principal is None:
            raise InvalidApiKeyError()
        return principal

    def forget_api_keys(self) -> None:
        """Drop cached keys (after a revocation through this instance)."""
        self._keys.clear()

    def _principal_for(self, grant: ApiKeyGrant) -> Principal:
        scopes = grant.scopes
        ttl = self._internal_ttl
        if grant.expires_at is not None:  # the internal token never outlives the key
            ttl = max(1, min(ttl, int(grant.expires_at.timestamp() - time.time())))
        token = self.signer.issue(
            str(grant.user_id),
            [grant.role],
            ttl_seconds=ttl,
            scopes=scopes,
            extra={"username": grant.username, "key_id": str(grant.key_id)},
        )
        return Principal(
            user_id=str(grant.user_id),
            roles=(grant.role,),
            scopes=frozenset(scopes),
            token=token,
            api_key_id=str(grant.key_id),
            username=grant.username,
        )

    async def authenticate(self, token: str | None, api_key: str | None) -> Principal | None:
        """The caller, None when no credential was given; 401 when one is bad or both
        kinds are given (ambiguous)."""
        if token is not None and api_key is not None:
            raise AuthenticationError("Send either a bearer token or an API key, not both.")
        if token is not None:
            return await self.from_token(token)
        if api_key is not None:
            return await self.from_api_key(api_key)
        return None


def credentials_from_headers(
    headers: list[tuple[bytes, bytes]],
) -> tuple[str | None, str | None]:
    """The bearer token and API key in raw ASGI headers (either may be None)."""
    token = api_key = None
    for name, value in headers:
        if name == b"authorization":
            scheme, _, rest = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not rest.strip():
                raise AuthenticationError("Use 'Authorization: Bearer <token>'.")
            token = rest.strip()
        elif name == API_KEY_HEADER:
            api_key = value.decode("latin-1").strip()
    return token, api_key
