"""Token verification rejects every known forgery and accepts only our own tokens."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import httpx
import jwt as pyjwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from shared.jwt import (
    ExpiredTokenError,
    InvalidTokenError,
    RemoteJwks,
    SigningKey,
    StaticKeys,
    TokenSigner,
    TokenVerifier,
    jwks_document,
    key_id,
    public_key_from_jwk,
)

ISSUER, AUDIENCE = "bourse", "bourse-api"


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def signer(key: SigningKey) -> TokenSigner:
    return TokenSigner(key, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=300)


@pytest.fixture(scope="module")
def verifier(key: SigningKey) -> TokenVerifier:
    return TokenVerifier(
        StaticKeys([key.public_key]), issuer=ISSUER, audience=AUDIENCE, leeway_seconds=0
    )


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else orjson.dumps(data)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(**overrides: object) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "iat": now,
        "exp": now + 60,
        "token_use": "access",
        "roles": ["viewer"],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: SigningKey, payload: dict[str, Any], **headers: object) -> str:
    return pyjwt.encode(
        payload, key.private_key, algorithm="EdDSA", headers={"kid": key.kid, **headers}
    )


async def test_a_token_we_issue_verifies(signer: TokenSigner, verifier: TokenVerifier) -> None:
    token = signer.issue("user-42", ["analyst"], scopes=["read"])
    verified = await verifier.verify(token)
    assert verified.subject == "user-42"
    assert verified.roles == ("analyst",)
    assert verified.scopes == ("read",)
    assert verified.expires_at - verified.issued_at == 300
    assert pyjwt.get_unverified_header(token)["kid"] == signer.key.kid


async def test_alg_none_is_rejected(key: SigningKey, verifier: TokenVerifier) -> None:
    token = f"{b64({'alg': 'none', 'kid': key.kid, 'typ': 'JWT'})}.{b64(claims())}."
    with pytest.raises(InvalidTokenError, match="algorithm"):
        await verifier.verify(token)


async def test_hs256_signed_with_the_public_key_is_rejected(
    key: SigningKey, verifier: TokenVerifier
) -> None:
    public_pem = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import hashlib
    import hmac

    header = b64({"alg": "HS256", "kid": key.kid, "typ": "JWT"})
    body = b64(claims())
    mac = hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(InvalidTokenError, match="algorithm"):
        await verifier.verify(f"{header}.{body}.{b64(mac)}")


async def test_an_unlisted_algorithm_is_rejected(verifier: TokenVerifier) -> None:
    ec_key = generate_private_key(SECP256R1())
    token = pyjwt.encode(claims(), ec_key, algorithm="ES256", headers={"kid": "x"})
    with pytest.raises(InvalidTokenError, match="algorithm"):
        await verifier.verify(token)


async def test_a_bad_signature_is_rejected(key: SigningKey, verifier: TokenVerifier) -> None:
    token = sign(key, claims())
    header, _, signature = token.split(".")
    tampered_body = b64(claims(roles=["admin"]))
    with pytest.raises(InvalidTokenError):
        await verifier.verify(f"{header}.{tampered_body}.{signature}")


async def test_a_token_from_another_key_with_our_kid_is_rejected(
    key: SigningKey, verifier: TokenVerifier
) -> None:
    other = SigningKey.generate()
    token = pyjwt.encode(claims(), other.private_key, algorithm="EdDSA", headers={"kid": key.kid})
    with pytest.raises(InvalidTokenError):
        await verifier.verify(token)


@pytest.mark.parametrize("kid", ["unknown", "../../etc/passwd", "' OR 1=1 --", "x" * 500])
async def test_unknown_or_injected_kid_is_rejected(
    key: SigningKey, verifier: TokenVerifier, kid: str
) -> None:
    token = pyjwt.encode(claims(), key.private_key, algorithm="EdDSA", headers={"kid": kid})
    with pytest.raises(InvalidTokenError):
        await verifier.verify(token)


async def test_a_token_without_kid_is_rejected(key: SigningKey, verifier: TokenVerifier) -> None:
    token = pyjwt.encode(claims(), key.private_key, algorithm="EdDSA")
    with pytest.raises(InvalidTokenError, match="key id"):
        await verifier.verify(token)


async def test_expired_token_is_rejected(key: SigningKey, verifier: TokenVerifier) -> None:
    now = int(time.time())
    with pytest.raises(ExpiredTokenError):
        await verifier.verify(sign(key, claims(iat=now - 120, exp=now - 60)))


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "someone-else"},
        {"aud": ["bourse-api", "someone-else"]},
        {"iss": "evil"},
        {"iss": "bourse-evil"},  # prefix match must not pass
        {"iss": "bours"},  # substring match must not pass
        {"sub": None},
        {"exp": None},
        {"iat": None},
        {"aud": None},
        {"iss": None},
        {"token_use": "refresh"},  # a refresh token is not an access token
        {"roles": "admin"},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
async def test_wrong_or_missing_claims_are_rejected(
    key: SigningKey, verifier: TokenVerifier, overrides: dict[str, Any]
) -> None:
    with pytest.raises(InvalidTokenError):
        await verifier.verify(sign(key, claims(**overrides)))


async def test_unknown_crit_header_is_rejected(key: SigningKey, verifier: TokenVerifier) -> None:
    payload = {**claims(), "exp_hint": 1}
    assert (await verifier.verify(sign(key, payload))).subject == "user-1"  # control
    with pytest.raises(InvalidTokenError):
        await verifier.verify(sign(key, payload, crit=["exp_hint"]))


@pytest.mark.parametrize("garbage", ["", "abc", "a.b", "a.b.c", "...."])
async def test_garbage_is_rejected(verifier: TokenVerifier, garbage: str) -> None:
    with pytest.raises(InvalidTokenError):
        await verifier.verify(garbage)


def test_jwks_round_trip_and_stable_kid(key: SigningKey) -> None:
    document = jwks_document([key.public_key])
    (jwk,) = document["keys"]
    assert jwk["kid"] == key.kid == key_id(public_key_from_jwk(jwk))
    assert "d" not in jwk  # never the private part
    assert SigningKey.from_pem(key.to_pem()).kid == key.kid


async def test_remote_jwks_refreshes_on_a_new_kid_but_not_on_every_unknown_one() -> None:
    keys = [SigningKey.generate()]
    fetches = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal fetches
        fetches += 1
        return httpx.Response(200, json=jwks_document([k.public_key for k in keys]))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        jwks = RemoteJwks("http://gateway/jwks", client=client, min_refresh_interval=3600)
        assert await jwks.get(keys[0].kid) is not None
        assert fetches == 1
        for _ in range(20):  # forged kids do not cause a fetch each
            assert await jwks.get("forged") is None
        assert fetches == 1
        jwks_fast = RemoteJwks("http://gateway/jwks", client=client, min_refresh_interval=0)
        keys.append(SigningKey.generate())  # rotation: the new key is found on first sight
        assert await jwks_fast.get(keys[1].kid) is not None
        assert await jwks_fast.get(keys[0].kid) is not None  # the old one still verifies


async def test_requests_missing_together_share_one_refresh() -> None:
    key = SigningKey.generate()
    fetches = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal fetches
        fetches += 1
        await asyncio.sleep(0.05)  # slow enough for every caller to miss meanwhile
        return httpx.Response(200, json=jwks_document([key.public_key]))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        jwks = RemoteJwks("http://gateway/jwks", client=client, min_refresh_interval=3600)
        found = await asyncio.gather(*(jwks.get(key.kid) for _ in range(20)))
    assert all(k is not None for k in found)
    assert fetches == 1
