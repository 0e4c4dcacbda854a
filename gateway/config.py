"""Settings of the gateway (``GATEWAY_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from shared.settings import BaseServiceSettings


class GatewaySettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    port: int = 8000
    # Required: an Ed25519 private key (PEM, PKCS#8). ``bourse keys ensure`` makes one.
    jwt_private_key_file: Path
    access_token_ttl_seconds: int = Field(default=600, ge=30, le=900)
    market_url: str = Field(pattern=r"^https?://")
    recommendations_url: str = Field(pattern=r"^https?://")
    portfolio_url: str = Field(pattern=r"^https?://")
    realtime_url: str = Field(pattern=r"^https?://")
    upstream_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    demo: bool = False

    @field_validator("jwt_private_key_file")
    @classmethod
    def _key_file_exists(cls, path: Path) -> Path:
        if not path.is_file():
            raise ValueError(f"no key file at {path}")
        return path

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("market_url", "recommendations_url", "portfolio_url", "realtime_url")
    @classmethod
    def _no_trailing_slash(cls, url: str) -> str:
        return url.rstrip("/")
