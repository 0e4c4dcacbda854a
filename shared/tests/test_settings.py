"""Settings fail fast and name the variable that is wrong."""

from __future__ import annotations

import pytest
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings, SettingsError, load_settings


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DEMOSVC_", extra="ignore", frozen=True)
    port: int = 9000


GOOD = {
    "DEMOSVC_DATABASE_URL": "postgresql://demo@localhost/bourse",
    "DEMOSVC_REDIS_URL": "redis://localhost:6379/0",
    "DEMOSVC_NATS_URL": "nats://localhost:4222",
    "DEMOSVC_JWKS_URL": "http://localhost:8000/api/v1/auth/jwks",
}


def test_complete_environment_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in GOOD.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DEMOSVC_PORT", "9100")
    settings = load_settings(DemoSettings)
    assert settings.port == 9100
    assert settings.database_url == GOOD["DEMOSVC_DATABASE_URL"]


def test_missing_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in GOOD.items():
        if name != "DEMOSVC_NATS_URL":
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("DEMOSVC_NATS_URL", raising=False)
    with pytest.raises(SettingsError, match="DEMOSVC_NATS_URL"):
        load_settings(DemoSettings)


def test_wrong_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in GOOD.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DEMOSVC_PORT", "not-a-port")
    monkeypatch.setenv("DEMOSVC_DATABASE_URL", "mysql://nope")
    with pytest.raises(SettingsError) as caught:
        load_settings(DemoSettings)
    assert "DEMOSVC_PORT" in str(caught.value)
    assert "DEMOSVC_DATABASE_URL" in str(caught.value)
