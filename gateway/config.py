"""Settings of the gateway (``GATEWAY_*``).

Only the signing key and the services' URLs are required; everything else has a default
that suits one host. Rate-limit quotas are written ``<count>/<period>`` with the period in
seconds, minutes or hours (``600/60s``, ``20/1m``, ``1000/1h``).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from shared.settings import BaseServiceSettings

_QUOTA = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*([smh]?)\s*$")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")
Quota = Annotated[str, Field(pattern=_QUOTA.pattern)]


def parse_quota(text: str) -> tuple[int, float]:
    """``"600/60s"`` -> (600, 60.0): how many requests per how many seconds."""
    match = _QUOTA.match(text)
    if match is None:
        raise ValueError(f"not a quota: {text!r} (expected like 600/60s)")
    count, period, unit = int(match[1]), int(match[2]), match[3] or "s"
    seconds = period * {"s": 1, "m": 60, "h": 3600}[unit]
    if count < 1 or seconds < 1:
        raise ValueError(f"a quota needs at least 1 request per at least 1 second: {text!r}")
    return count, float(seconds)


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class GatewaySettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    port: int = 8000

    # --- tokens -------------------------------------------------------------------------
    # Required: an Ed25519 private key (PEM, PKCS#8). ``bourse keys ensure`` makes one.
    jwt_private_key_file: Path
    # Other keys to publish in the JWKS and accept (PEM, private or public): the previous
    # signing key after a rotation, or the next one before it. See docs/gateway.md.
    jwt_extra_key_files: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    access_token_ttl_seconds: int = Field(default=600, ge=30, le=900)
    refresh_token_ttl_seconds: int = Field(default=14 * 86400, ge=300, le=90 * 86400)
    # Two refreshes racing with the same token within this window both succeed.
    refresh_reuse_grace_seconds: int = Field(default=10, ge=0, le=60)
    # Argon2 is CPU work: at most this many password hashes at once per process, a login
    # waiting for a slot (holding no database connection) at most the wait, then 503.
    password_hash_concurrency: int = Field(default=2, ge=1, le=64)
    password_hash_wait_seconds: float = Field(default=30.0, gt=0, le=300)
    # Tokens the gateway mints for API-key requests (what services see).
    internal_token_ttl_seconds: int = Field(default=60, ge=10, le=300)
    # How long an API key's lookup is trusted: revocation takes effect within this.
    api_key_cache_seconds: int = Field(default=30, ge=0, le=60)
    verified_token_cache_size: int = Field(default=10_000, ge=0)

    # --- upstreams ----------------------------------------------------------------------
    market_url: str = Field(pattern=r"^https?://")
    recommendations_url: str = Field(pattern=r"^https?://")
    portfolio_url: str = Field(pattern=r"^https?://")
    realtime_url: str = Field(pattern=r"^https?://")
    upstream_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    upstream_connect_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    upstream_max_connections: int = Field(default=256, ge=1)
    circuit_failure_threshold: int = Field(default=5, ge=1)
    circuit_open_seconds: float = Field(default=10.0, gt=0, le=300)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # Request heads (gateway/pipeline/wire.py): over these, 431 (414 for the target).
    max_header_line_bytes: int = Field(default=8 * 1024, ge=1024)
    max_header_bytes: int = Field(default=64 * 1024, ge=4 * 1024)
    max_header_count: int = Field(default=100, ge=16)
    max_url_bytes: int = Field(default=8 * 1024, ge=1024)

    # --- rate limits --------------------------------------------------------------------
    rate_limit_enabled: bool = True
    rate_limit_read: Quota = "1200/60s"  # per user or API key
    rate_limit_write: Quota = "300/60s"  # per user or API key
    rate_limit_public: Quota = "300/60s"  # per client IP, anonymous routes
    rate_limit_login_ip: Quota = "20/60s"  # failed logins per client IP
    rate_limit_login_user: Quota = "10/600s"  # failed logins per username
    # How long a limiter call may wait for Redis before the local fallback takes over.
    rate_limit_redis_timeout_seconds: float = Field(default=0.5, gt=0, le=10)
    # Peers whose X-Forwarded-For is believed (CIDRs): your load balancer, not the world.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # --- browser-facing -----------------------------------------------------------------
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_allow_credentials: bool = False
    hsts_seconds: int = Field(default=0, ge=0)  # set when served over HTTPS
    demo: bool = False

    @field_validator("jwt_private_key_file")
    @classmethod
    def _key_file_exists(cls, path: Path) -> Path:
        if not path.is_file():
            raise ValueError(f"no key file at {path}")
        return path

    @field_validator("jwt_extra_key_files", mode="before")
    @classmethod
    def _paths(cls, value: object) -> object:
        return _comma_list(value)

    @field_validator("jwt_extra_key_files")
    @classmethod
    def _extra_keys_exist(cls, paths: list[Path]) -> list[Path]:
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise ValueError(f"no key file at {', '.join(missing)}")
        return paths

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return _comma_list(value)

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        bad = [o for o in origins if o != "*" and not _ORIGIN.match(o)]
        if bad:
            raise ValueError(f"not an origin (scheme://host[:port]): {', '.join(bad)}")
        return origins

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, networks: list[str]) -> list[str]:
        for network in networks:
            ipaddress.ip_network(network, strict=False)  # raises ValueError, named by pydantic
        return networks

    @field_validator(
        "rate_limit_read",
        "rate_limit_write",
        "rate_limit_public",
        "rate_limit_login_ip",
        "rate_limit_login_user",
    )
    @classmethod
    def _quota(cls, text: str) -> str:
        parse_quota(text)
        return text

    @field_validator("market_url", "recommendations_url", "portfolio_url", "realtime_url")
    @classmethod
    def _no_trailing_slash(cls, url: str) -> str:
        return url.rstrip("/")

    @field_validator("cors_allow_credentials")
    @classmethod
    def _no_wildcard_with_credentials(cls, allow: bool, info: ValidationInfo) -> bool:
        # A wildcard origin with credentials would let any site act as the user.
        if allow and "*" in info.data.get("cors_origins", []):
            raise ValueError("refused with GATEWAY_CORS_ORIGINS='*': name the allowed origins")
        return allow
