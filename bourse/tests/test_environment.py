"""The settings contract: which variables each part is started with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bourse.environment import part_environment, part_ports
from bourse.parts import BY_NAME, PARTS


@dataclass(frozen=True)
class _Urls:
    admin_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    redis_url: str = "redis://127.0.0.1:6379/0"
    nats_url: str = "nats://127.0.0.1:4222"


def test_a_service_gets_its_own_role_and_the_gateways_jwks() -> None:
    env = part_environment(
        BY_NAME["market"], _Urls(), database="bourse", redis_prefix="t:1:", nats_prefix="t1"
    )
    assert env == {
        "MARKET_HOST": "127.0.0.1",
        "MARKET_PORT": "8001",
        "MARKET_DATABASE_URL": "postgresql://bourse_market@127.0.0.1:5432/bourse",
        "MARKET_REDIS_URL": "redis://127.0.0.1:6379/0",
        "MARKET_NATS_URL": "nats://127.0.0.1:4222",
        "MARKET_LOG_LEVEL": "INFO",
        "MARKET_REDIS_PREFIX": "t:1:",
        "MARKET_NATS_PREFIX": "t1",
        "MARKET_JWKS_URL": "http://127.0.0.1:8000/api/v1/auth/jwks",
    }


def test_the_gateway_gets_its_key_the_services_and_demo_mode(tmp_path: Path) -> None:
    key = tmp_path / "jwt.pem"
    env = part_environment(
        BY_NAME["gateway"], _Urls(), database="bourse", signing_key=key, demo=True
    )
    assert env["GATEWAY_PORT"] == "8000"
    assert env["GATEWAY_DATABASE_URL"] == "postgresql://bourse_gateway@127.0.0.1:5432/bourse"
    assert env["GATEWAY_JWT_PRIVATE_KEY_FILE"] == str(key)
    assert env["GATEWAY_DEMO"] == "true"
    assert env["GATEWAY_MARKET_URL"] == "http://127.0.0.1:8001"
    assert env["GATEWAY_RECOMMENDATIONS_URL"] == "http://127.0.0.1:8002"
    assert env["GATEWAY_PORTFOLIO_URL"] == "http://127.0.0.1:8003"
    assert env["GATEWAY_REALTIME_URL"] == "http://127.0.0.1:8004"
    assert "GATEWAY_JWKS_URL" not in env
    assert "GATEWAY_REDIS_PREFIX" not in env


def test_demo_mode_is_off_unless_asked() -> None:
    env = part_environment(BY_NAME["gateway"], _Urls(), database="bourse")
    assert "GATEWAY_DEMO" not in env


def test_a_port_base_moves_every_part_together() -> None:
    ports = part_ports(9100)
    assert [ports[p.name] for p in PARTS] == [9100, 9101, 9102, 9103, 9104]
    env = part_environment(BY_NAME["portfolio"], _Urls(), database="x", ports=ports)
    assert env["PORTFOLIO_PORT"] == "9103"
    assert env["PORTFOLIO_JWKS_URL"] == "http://127.0.0.1:9100/api/v1/auth/jwks"


def test_a_password_in_the_admin_dsn_is_not_passed_on() -> None:
    urls = _Urls(admin_url="postgresql://admin:secret@db.internal:6543/postgres?sslmode=require")
    env = part_environment(BY_NAME["realtime"], urls, database="bourse")
    assert env["REALTIME_DATABASE_URL"] == (
        "postgresql://bourse_realtime@db.internal:6543/bourse?sslmode=require"
    )
