"""Resolution order: an environment URL wins; a closed local port is never chosen."""

from __future__ import annotations

from pathlib import Path

import pytest

from bourse import infra
from bourse.home import Home
from bourse.infra import InfraSettings
from bourse.tests.helpers import closed_url, isolated_settings


def test_env_url_wins_without_probing(tmp_path: Path) -> None:
    # Nothing listens there: an explicit URL is taken as given (the operator knows best).
    url = closed_url("redis")
    settings = InfraSettings.from_env({"BOURSE_HOME": str(tmp_path), "BOURSE_REDIS_URL": url})
    assert infra.resolve_one("redis", settings) == infra.Endpoint("redis", url, "env")


def test_tests_prefer_their_own_variables(tmp_path: Path) -> None:
    env = {
        "BOURSE_HOME": str(tmp_path),
        "BOURSE_TEST_DATABASE_URL": "postgresql://postgres@db.test:5432/postgres",
        "BOURSE_DATABASE_URL": "postgresql://postgres@db.dev:5432/postgres",
        "BOURSE_NATS_URL": "nats://nats.dev:4222",
    }
    settings = InfraSettings.from_env(env, tests=True)
    assert infra.resolve_one("postgres", settings).url.startswith("postgresql://postgres@db.test")
    assert infra.resolve_one("nats", settings).url == "nats://nats.dev:4222"


def test_settings_from_env_read_home_and_ports(tmp_path: Path) -> None:
    settings = InfraSettings.from_env(
        {"BOURSE_HOME": str(tmp_path), "BOURSE_EMBEDDED_REDIS_PORT": "51111"}
    )
    assert settings.home == Home(tmp_path.resolve())
    assert settings.ports["redis"] == 51111
    assert settings.ports["postgres"] == infra.EMBEDDED_PORTS["postgres"]
    assert settings.local_urls == infra.LOCAL_URLS
    forced = InfraSettings.from_env({"BOURSE_HOME": str(tmp_path), "BOURSE_EMBEDDED": "1"})
    assert forced.local_urls == {}


@pytest.mark.parametrize("kind", infra.KINDS)
def test_a_closed_port_does_not_answer(kind: str) -> None:
    assert not infra.PROBES[kind](closed_url(kind))


def test_closed_local_port_leads_to_embedded(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path)
    try:
        endpoint = infra.resolve_one("redis", settings, report=lambda _: None)
        assert endpoint.source == "embedded"
        assert endpoint.url == infra.embedded_url("redis", settings.ports["redis"])
        assert endpoint.url != settings.local_urls["redis"]
    finally:
        infra.stop_embedded("redis", settings.home)
