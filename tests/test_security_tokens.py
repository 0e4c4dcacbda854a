"""Known attacks on JWT backends, sent to the running gateway: each is refused with 401
in the envelope, on a route the gateway forwards (so the service never sees it), on a
route the gateway answers itself, and on a WebSocket handshake. Tokens are forged with
the platform's real signing key where the attack needs a valid signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import orjson
import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key as rsa_key
from websockets.asyncio.client import connect

from gateway.tests.e2e import assert_envelope, new_user, wait_live
from shared.jwt import SigningKey
from tests.platform import Platform

pytestmark = pytest.mark.e2e

ISSUER, AUDIENCE = "bourse", "bourse-api"


@pytest.fixture(scope="module")
def signing_key(platform: Platform) -> SigningKey:
    return SigningKey.from_file(platform.environments["gateway"]["GATEWAY_JWT_PRIVATE_KEY_FILE"])


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else orjson.dumps(data)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(sub: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now,
        "exp": now + 300,
        "token_use": "access",
        "roles": ["admin"],  # every forgery also tries to escalate
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: SigningKey, payload: dict[str, Any], **headers: Any) -> str:
    return pyjwt.encode(
        payload, key.private_key, algorithm="EdDSA", headers={"kid": key.kid, **headers}
    )


def forgeries(key: SigningKey, sub: str) -> dict[str, str]:
    public_pem = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw_public = key.public_key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    payload = claims(sub)
    valid = sign(key, payload)
    head, body, signature = valid.split(".")
    tampered_body = b64(claims(sub, roles=["admin", "root"]))
    other = SigningKey.generate()
    now = int(time.time())

    def hs256(secret: bytes) -> str:
        header = b64({"alg": "HS256", "typ": "JWT", "kid": key.kid})
        signing_input = f"{header}.{b64(payload)}".encode()
        mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
        return f"{header}.{b64(payload)}.{b64(mac)}"

    return {
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': key.kid})}.{b64(payload)}.",
        "alg None, empty signature": f"{b64({'alg': 'None', 'kid': key.kid})}.{b64(payload)}.",
        "HS256 keyed with the public PEM": hs256(public_pem),
        "HS256 keyed with the raw public key": hs256(raw_public),
        "ES256 (unlisted algorithm)": pyjwt.encode(
            payload,
            generate_private_key(SECP256R1()),
            algorithm="ES256",
            headers={"kid": key.kid},
        ),
        "RS256 (unlisted algorithm)": pyjwt.encode(
            payload,
            rsa_key(public_exponent=65537, key_size=2048),
            algorithm="RS256",
            headers={"kid": key.kid},
        ),
        "bad signature (payload changed)": f"{head}.{tampered_body}.{signature}",
        "bad signature (bytes flipped)": f"{head}.{body}.{signature[:-4]}AAAA",
        "signed by a stranger with our kid": sign(other, payload, kid=key.kid),
        "unknown kid": sign(other, payload),
        "injected kid (path)": sign(key, payload, kid="../../../../dev/null"),
        "injected kid (sql)": sign(key, payload, kid="' OR '1'='1"),
        "injected kid (url)": sign(key, payload, kid="http://evil.example/jwks.json"),
        "no kid": pyjwt.encode(payload, key.private_key, algorithm="EdDSA"),
        "expired": sign(key, claims(sub, iat=now - 900, exp=now - 60)),
        "no exp": sign(key, claims(sub, exp=None)),
        "wrong aud": sign(key, claims(sub, aud="someone-else")),
        "aud as a list with ours": sign(key, claims(sub, aud=[AUDIENCE, "other"])),
        "wrong iss": sign(key, claims(sub, iss="evil")),
        "iss with our name as prefix": sign(key, claims(sub, iss=ISSUER + "-evil")),
        "iss a prefix of ours": sign(key, claims(sub, iss=ISSUER[:-1])),
        "refresh JWT as access": sign(key, claims(sub, token_use="refresh")),
        "no token_use": sign(key, claims(sub, token_use=None)),
        "unknown crit header": sign(key, payload, crit=["exp-policy"], **{"exp-policy": 1}),
        "not a JWT": "definitely-not-a-token",
        "empty segments": "..",
    }


async def test_every_forgery_is_refused_everywhere(
    gateway: httpx.AsyncClient, platform: Platform, signing_key: SigningKey
) -> None:
    user = await new_user(gateway, "viewer")
    # A real refresh token presented as an access token.
    tokens = {
        **forgeries(signing_key, user.id),
        "opaque refresh token as access": user.refresh_token,
    }
    ws_base = platform.gateway_url.replace("http://", "ws://")
    failures = []
    for name, token in tokens.items():
        auth = {"Authorization": f"Bearer {token}"}
        for path in ("/api/v1/stocks", "/api/v1/users/me"):
            response = await gateway.get(path, headers=auth)
            if response.status_code != 401:
                failures.append(f"{name} on {path}: {response.status_code}")
                continue
            assert_envelope(response, 401)
            assert response.headers["www-authenticate"] == "Bearer"
        try:
            async with connect(f"{ws_base}/api/v1/ws/prices", additional_headers=auth):
                failures.append(f"{name} on the WebSocket: accepted")
        except websockets.InvalidStatus as refused:
            if refused.response.status_code != 401:
                failures.append(f"{name} on the WebSocket: {refused.response.status_code}")
    assert failures == []
    # The control: the same key, properly used, is accepted.
    good = sign(signing_key, claims(user.id, roles=["viewer"]))
    assert (
        await gateway.get("/api/v1/users/me", headers={"Authorization": f"Bearer {good}"})
    ).status_code == 200


async def test_tokens_of_a_rotated_key_stay_valid_until_retired(
    gateway: httpx.AsyncClient, platform: Platform, tmp_path: Path, signing_key: SigningKey
) -> None:
    old_key_file = platform.environments["gateway"]["GATEWAY_JWT_PRIVATE_KEY_FILE"]
    new_key = SigningKey.generate()
    new_key_file = tmp_path / "next.pem"
    new_key_file.write_bytes(new_key.to_pem())
    user = await new_user(gateway, "viewer")
    old_token = user.headers

    rotated = platform.start_extra(
        "gateway",
        {
            "GATEWAY_JWT_PRIVATE_KEY_FILE": str(new_key_file),
            "GATEWAY_JWT_EXTRA_KEY_FILES": old_key_file,
        },
        tag="-rotated",
    )
    retired = platform.start_extra(
        "gateway", {"GATEWAY_JWT_PRIVATE_KEY_FILE": str(new_key_file)}, tag="-retired"
    )
    try:
        await wait_live(rotated)
        await wait_live(retired)
        async with httpx.AsyncClient(base_url=rotated.url) as client:
            jwks = (await client.get("/api/v1/auth/jwks")).json()
            assert {k["kid"] for k in jwks["keys"]} == {signing_key.kid, new_key.kid}
            assert (await client.get("/api/v1/users/me", headers=old_token)).status_code == 200
            new_pair = await client.post(
                "/api/v1/auth/token", data={"username": user.username, "password": user.password}
            )
            new_token = new_pair.json()["access_token"]
            assert pyjwt.get_unverified_header(new_token)["kid"] == new_key.kid
        async with httpx.AsyncClient(base_url=retired.url) as client:
            assert_envelope(
                await client.get("/api/v1/users/me", headers=old_token), 401, "INVALID_TOKEN"
            )
            fresh = {"Authorization": f"Bearer {new_token}"}
            assert (await client.get("/api/v1/users/me", headers=fresh)).status_code == 200
    finally:
        rotated.stop()
        retired.stop()
