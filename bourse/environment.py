"""The settings contract: the environment each part is started with.

A part reads ``<PREFIX>_<FIELD>`` (``MARKET_DATABASE_URL``...). This module is the one
place that builds those variables, for ``bourse up`` and for the test suite alike.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from bourse.parts import PARTS, Part
from shared.db import service_dsn

LOOPBACK = "127.0.0.1"


class InfraUrls(Protocol):
    """Where the servers are: a superuser DSN, a Redis URL and a NATS URL."""

    @property
    def admin_url(self) -> str: ...

    @property
    def redis_url(self) -> str: ...

    @property
    def nats_url(self) -> str: ...


def part_ports(base: int | None = None) -> dict[str, int]:
    """Each part's port: its default (gateway 8000 ... realtime 8004), or shifted so
    the gateway sits on ``base`` (``BOURSE_PORT_BASE``)."""
    if base is None:
        configured = os.environ.get("BOURSE_PORT_BASE")
        base = int(configured) if configured else None
    gateway_port = next(p.default_port for p in PARTS if p.is_gateway)
    shift = 0 if base is None else base - gateway_port
    return {part.name: part.default_port + shift for part in PARTS}


def part_url(name: str, ports: Mapping[str, int]) -> str:
    return f"http://{LOOPBACK}:{ports[name]}"


def part_environment(
    part: Part,
    infra: InfraUrls,
    *,
    database: str,
    redis_prefix: str = "",
    nats_prefix: str = "",
    ports: Mapping[str, int] | None = None,
    signing_key: Path | None = None,
    demo: bool = False,
    log_level: str = "INFO",
) -> dict[str, str]:
    """The variables ``part`` needs (only those; merge them over ``os.environ`` to start it).

    The database URL is the admin DSN with the part's own role (no password: local and
    embedded servers trust loopback) and ``database``.
    """
    ports = dict(ports) if ports is not None else part_ports()
    prefix = part.env_prefix
    env = {
        f"{prefix}_HOST": LOOPBACK,
        f"{prefix}_PORT": str(ports[part.name]),
        f"{prefix}_DATABASE_URL": service_dsn(
            infra.admin_url, database=database, role=part.db_role
        ),
        f"{prefix}_REDIS_URL": infra.redis_url,
        f"{prefix}_NATS_URL": infra.nats_url,
        f"{prefix}_LOG_LEVEL": log_level,
    }
    if redis_prefix:
        env[f"{prefix}_REDIS_PREFIX"] = redis_prefix
    if nats_prefix:
        env[f"{prefix}_NATS_PREFIX"] = nats_prefix
    if part.is_gateway:
        if signing_key is not None:
            env[f"{prefix}_JWT_PRIVATE_KEY_FILE"] = str(signing_key)
        for other in PARTS:
            if not other.is_gateway:
                env[f"{prefix}_{other.env_prefix}_URL"] = part_url(other.name, ports)
        if demo:
            env[f"{prefix}_DEMO"] = "true"
    else:
        gateway = next(p for p in PARTS if p.is_gateway)
        env[f"{prefix}_JWKS_URL"] = part_url(gateway.name, ports) + "/api/v1/auth/jwks"
    return env
