"""JSON Web Tokens: signing (the gateway only) and verification (every part).

The algorithm is pinned in code to EdDSA (Ed25519). A token is accepted only if:
its header names exactly that algorithm, carries a ``kid`` of a key we already know
(or learn from the gateway's JWKS, refreshed at most every ``min_refresh_interval``
seconds), and has no ``crit`` extension; its signature verifies; and it carries
``exp, iat, iss, aud, sub`` with ``iss`` and ``aud`` equal to ours and the expected
``token_use``. Anything else raises :class:`InvalidTokenError` (401).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import jwt as pyjwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.errors import AuthenticationError

ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")
ACCESS = "access"


class InvalidTokenError(AuthenticationError):
    error_code = "INVALID_TOKEN"
    default_message = "The token is invalid."


class ExpiredTokenError(InvalidTokenError):
    error_code = "TOKEN_EXPIRED"
    default_message = "The token has expired."


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """The RFC 7638 thumbprint of ``key``: stable, and derived from the key alone."""
    canonical = orjson.dumps({"crv": "Ed25519", "kty": "OKP", "x": _b64url(_raw_public(key))})
    return _b64url(hashlib.sha256(canonical).digest())


def public_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    """``key`` as a JWK (RFC 8037)."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64url(_raw_public(key)),
        "kid": key_id(key),
        "alg": ALGORITHM,
        "use": "sig",
    }


def jwks_document(keys: Iterable[Ed25519PublicKey]) -> dict[str, list[dict[str, str]]]:
    """A JWKS document publishing ``keys``."""
    return {"keys": [public_jwk(key) for key in keys]}


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """The Ed25519 public key in ``pem``, which may hold a private or a public key
    (a retired signing key can be kept as either while its tokens are still valid)."""
    if b"PRIVATE KEY" in pem:
        return SigningKey.from_pem(pem).public_key
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def public_key_from_jwk(jwk: Mapping[str, Any]) -> Ed25519PublicKey:
    """Parse an Ed25519 JWK; anything else raises ``ValueError``."""
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or not isinstance(jwk.get("x"), str):
        raise ValueError("not an Ed25519 JWK")
    return Ed25519PublicKey.from_public_bytes(_b64url_decode(jwk["x"]))


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key and its ``kid``."""

    private_key: Ed25519PrivateKey
    kid: str

    @classmethod
    def generate(cls) -> SigningKey:
        key = Ed25519PrivateKey.generate()
        return cls(key, key_id(key.public_key()))

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the signing key must be an Ed25519 private key")
        return cls(key, key_id(key.public_key()))

    @classmethod
    def from_file(cls, path: str | Path) -> SigningKey:
        return cls.from_pem(Path(path).read_bytes())

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def to_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@dataclass(frozen=True)
class Claims:
    """The verified content of a token."""

    subject: str
    roles: tuple[str, ...]
    token_use: str
    issued_at: int
    expires_at: int
    token_id: str | None
    scopes: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def has_role(self, *roles: str) -> bool:
        return any(role in self.roles for role in roles)


class TokenSigner:
    """Issues tokens signed with the gateway's current key."""

    def __init__(
        self, key: SigningKey, *, issuer: str, audience: str, ttl_seconds: int = 600
    ) -> None:
        self.key = key
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds

    def issue(
        self,
        subject: str,
        roles: Iterable[str],
        *,
        token_use: str = ACCESS,
        ttl_seconds: int | None = None,
        scopes: Iterable[str] = (),
        extra: Mapping[str, Any] | None = None,
        now: int | None = None,
    ) -> str:
        issued = int(time.time()) if now is None else now
        claims: dict[str, Any] = dict(extra or {})
        claims.update(
            iss=self.issuer,
            aud=self.audience,
            sub=subject,
            iat=issued,
            nbf=issued,
            exp=issued + (self.ttl_seconds if ttl_seconds is None else ttl_seconds),
            jti=uuid.uuid4().hex,
            token_use=token_use,
            roles=list(roles),
        )
        scope_list = list(scopes)
        if scope_list:
            claims["scope"] = " ".join(scope_list)
        return pyjwt.encode(
            claims,
            self.key.private_key,
            algorithm=ALGORITHM,
            headers={"kid": self.key.kid, "typ": "JWT"},
        )


class KeySource(Protocol):
    """Where a verifier finds the public key for a ``kid``."""

    async def get(self, kid: str) -> Ed25519PublicKey | None: ...


class StaticKeys:
    """A fixed set of public keys (the gateway's own, or keys given in tests)."""

    def __init__(self, keys: Iterable[Ed25519PublicKey]) -> None:
        self._keys = {key_id(key): key for key in keys}

    async def get(self, kid: str) -> Ed25519PublicKey | None:
        return self._keys.get(kid)


class RemoteJwks:
    """Public keys fetched from the gateway's JWKS endpoint.

    Keys are cached; an unknown ``kid`` triggers a refresh at most once every
    ``min_refresh_interval`` seconds, so forged ``kid`` values cannot flood the gateway.
    """

    def __init__(
        self, url: str, *, client: httpx.AsyncClient, min_refresh_interval: float = 30.0
    ) -> None:
        self.url = url
        self._client = client
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._last_refresh = float("-inf")
        self._min_refresh_interval = min_refresh_interval
        self._refresh_lock = asyncio.Lock()

    async def refresh(self) -> None:
        self._last_refresh = time.monotonic()
        response = await self._client.get(self.url, timeout=5.0)
        response.raise_for_status()
        keys: dict[str, Ed25519PublicKey] = {}
        for jwk in response.json().get("keys", []):
            try:
                keys[str(jwk["kid"])] = public_key_from_jwk(jwk)
            except (KeyError, ValueError):
                continue
        self._keys = keys

    async def get(self, kid: str) -> Ed25519PublicKey | None:
        key = self._keys.get(kid)
        if key is not None:
            return key
        # Requests that miss together wait for one refresh and then all see its result
        # (without the lock, every one but the first would be refused as 'unknown key').
        async with self._refresh_lock:
            key = self._keys.get(kid)
            if key is None and time.monotonic() - self._last_refresh >= self._min_refresh_interval:
                try:
                    await self.refresh()
                except httpx.HTTPError:
                    return None
                key = self._keys.get(kid)
        return key


class TokenVerifier:
    """Verifies tokens issued by :class:`TokenSigner`; see the module docstring.

    With ``cache_size`` > 0, access tokens that verified are remembered (by their exact
    text) until they expire, so a client that sends the same token on every request pays
    for the signature check once. Only successes are cached, and expiry is checked on
    every hit, so the cache cannot make a bad token pass or a token outlive its ``exp``.
    """

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        leeway_seconds: int = 5,
        cache_size: int = 0,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway_seconds = leeway_seconds
        self._cache_size = cache_size
        self._cache: dict[str, Claims] = {}

    async def verify(self, token: str, *, token_use: str = ACCESS) -> Claims:
        if self._cache_size:
            cached = self._cache.get(token)
            if cached is not None and cached.token_use == token_use:
                if time.time() < cached.expires_at + self.leeway_seconds:
                    return cached
                del self._cache[token]
        claims = await self._verify(token, token_use=token_use)
        if self._cache_size:
            if len(self._cache) >= self._cache_size:
                # Drop the oldest eighth: cheap, and keeps the tokens in use now.
                for stale in list(self._cache)[: max(1, self._cache_size // 8)]:
                    del self._cache[stale]
            self._cache[token] = claims
        return claims

    async def _verify(self, token: str, *, token_use: str) -> Claims:
        try:
            header = pyjwt.get_unverified_header(token)
        except pyjwt.PyJWTError:
            raise InvalidTokenError("The token is malformed.") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidTokenError("The token's algorithm is not accepted.")
        if "crit" in header:
            raise InvalidTokenError("The token has critical extensions we do not understand.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= 128:
            raise InvalidTokenError("The token has no usable key id.")
        key = await self.keys.get(kid)
        if key is None:
            raise InvalidTokenError("The token was signed by an unknown key.")
        return self.verify_with_key(token, key, token_use=token_use)

    def verify_with_key(
        self, token: str, key: Ed25519PublicKey, *, token_use: str = ACCESS
    ) -> Claims:
        try:
            payload = pyjwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": list(REQUIRED_CLAIMS), "strict_aud": True},
            )
        except pyjwt.ExpiredSignatureError:
            raise ExpiredTokenError() from None
        except pyjwt.PyJWTError as exc:
            raise InvalidTokenError(f"The token is invalid: {exc}.") from None
        # Belt and braces: exact comparisons, whatever the library's matching rules are.
        if payload.get("iss") != self.issuer or payload.get("aud") != self.audience:
            raise InvalidTokenError("The token was issued for someone else.")
        if payload.get("token_use") != token_use:
            raise InvalidTokenError(f"A {token_use} token is required.")
        roles = payload.get("roles", [])
        subject = payload.get("sub")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise InvalidTokenError("The token's roles are malformed.")
        if not isinstance(subject, str) or not subject:
            raise InvalidTokenError("The token has no subject.")
        scope = payload.get("scope", "")
        return Claims(
            subject=subject,
            roles=tuple(roles),
            token_use=token_use,
            issued_at=int(payload["iat"]),
            expires_at=int(payload["exp"]),
            token_id=payload.get("jti"),
            scopes=tuple(scope.split()) if isinstance(scope, str) else (),
            raw=payload,
        )
