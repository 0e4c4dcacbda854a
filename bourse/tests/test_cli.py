"""The command line's own behaviour (commands that need the platform are tested end to end)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from bourse import cli
from bourse.parts import BY_NAME
from bourse.provision import part_database


def test_keys_ensure_creates_a_private_ed25519_key_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys" / "signing.pem"
    assert cli.main(["keys", "ensure", "--path", str(path)]) == 0
    pem = path.read_bytes()
    assert isinstance(load_pem_private_key(pem, password=None), Ed25519PrivateKey)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cli.main(["keys", "ensure", "--path", str(path)]) == 0
    assert path.read_bytes() == pem
    assert "exists" in capsys.readouterr().out


def test_infra_env_prints_export_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for kind in ("DATABASE", "REDIS", "NATS"):  # scripts/test exports these
        monkeypatch.delenv(f"BOURSE_TEST_{kind}_URL", raising=False)
        monkeypatch.delenv(f"BOURSE_{kind}_URL", raising=False)
    monkeypatch.setenv("BOURSE_HOME", str(tmp_path))
    monkeypatch.setenv("BOURSE_TEST_DATABASE_URL", "postgresql://postgres@db:5432/postgres")
    monkeypatch.setenv("BOURSE_TEST_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("BOURSE_NATS_URL", "nats://bus:4222")
    assert cli.main(["infra", "env"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "export BOURSE_TEST_DATABASE_URL=postgresql://postgres@db:5432/postgres",
        "export BOURSE_TEST_REDIS_URL=redis://cache:6379/0",
        "export BOURSE_TEST_NATS_URL=nats://bus:4222",
    ]


def test_status_is_non_zero_when_nothing_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOURSE_HOME", str(tmp_path))
    monkeypatch.setenv("BOURSE_PORT_BASE", "1")  # nothing listens on ports 1-5
    assert cli.main(["status"]) == 1
    out = capsys.readouterr().out
    assert "not resolved yet" in out
    assert "stopped" in out


def test_migrate_rejects_an_unknown_part(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["migrate", "--admin-url", "postgresql://postgres@x/postgres", "nope"])
    assert code == 1
    assert "unknown part(s) nope" in capsys.readouterr().err


def test_a_configured_part_url_gives_role_and_password() -> None:
    environ = {"MARKET_DATABASE_URL": "postgresql://market:s%40cret@db:5432/prod"}
    target = part_database(
        BY_NAME["market"], "postgresql://postgres@db/postgres", database="bourse", environ=environ
    )
    assert (target.role, target.password, target.database) == ("market", "s@cret", "prod")
    assert target.dsn == environ["MARKET_DATABASE_URL"]
    derived = part_database(
        BY_NAME["market"], "postgresql://postgres@db/postgres", database="bourse", environ={}
    )
    assert (derived.role, derived.password, derived.dsn) == (
        "bourse_market",
        None,
        "postgresql://bourse_market@db/bourse",
    )


def test_passwords_are_hidden_when_printed() -> None:
    assert cli.redact("postgresql://u:pw@h:1/d") == "postgresql://u:***@h:1/d"
    assert cli.redact("redis://h:6379/0") == "redis://h:6379/0"
