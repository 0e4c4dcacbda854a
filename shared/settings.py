"""Settings: one class per part, read from ``<PREFIX>_<FIELD>`` environment variables.

Build them once, in ``create_app`` or the ``__main__`` of a part, with :func:`load_settings`;
a missing or wrong value stops start-up with a message that names the variable.
"""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class BaseServiceSettings(BaseSettings):
    """What every part needs. Subclasses set ``env_prefix`` (``MARKET_`` ...)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, validate_default=True)

    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    database_url: str = Field(pattern=r"^postgres(ql)?://")
    db_pool_min: int = Field(default=1, ge=0)
    db_pool_max: int = Field(default=10, ge=1)
    # A request waits this long for a pooled connection before it is answered 503.
    db_acquire_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Server-side bounds on one statement and on a transaction left idle (PostgreSQL's
    # statement_timeout and idle_in_transaction_session_timeout, per connection); 0 = none.
    db_statement_timeout_ms: int = Field(default=15_000, ge=0)
    db_idle_in_transaction_timeout_ms: int = Field(default=60_000, ge=0)
    redis_url: str = Field(pattern=r"^(redis|rediss|unix)://")
    redis_prefix: str = ""
    nats_url: str = Field(pattern=r"^(nats|tls|ws|wss)://")
    nats_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9_-]*$")
    # Copies of each JetStream stream the part declares: 1 on one server; 3 on a NATS
    # cluster of three (deploy/k8s/overlays/scaled), so a node lost loses no event.
    nats_stream_replicas: int = Field(default=1, ge=1, le=5)
    log_level: LogLevel = "INFO"
    log_format: Literal["json", "text"] = "json"
    jwt_issuer: str = "bourse"
    jwt_audience: str = "bourse-api"
    # Signs pagination cursors (shared.pagination). Unset: a random key kept in the part's
    # own schema, the same for all its replicas. Changing it ends outstanding cursors.
    cursor_key: SecretStr | None = Field(default=None, min_length=32)

    # A validator, not Field(ge=, le=): subclasses redeclare ``port`` with their default.
    @field_validator("port")
    @classmethod
    def _port_in_range(cls, port: int) -> int:
        if not 1 <= port <= 65535:
            raise ValueError("must be a TCP port, 1-65535")
        return port


class ServiceSettings(BaseServiceSettings):
    """A service behind the gateway: verifies the gateway's tokens with its JWKS."""

    jwks_url: str = Field(pattern=r"^https?://")


class SettingsError(RuntimeError):
    """Start-up configuration is missing or wrong; the message names each variable."""


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S]) -> S:
    """Build ``cls`` from the environment, or raise :class:`SettingsError` naming the
    environment variables that are missing or invalid."""
    try:
        return cls()
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ""))
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            variable = f"{prefix}{field}".upper()
            problems.append(f"  {variable}: {err['msg']}")
        raise SettingsError(
            f"invalid configuration for {cls.__name__}:\n" + "\n".join(problems)
        ) from None
