"""A part started with a missing or wrong setting stops at once and names the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bourse.parts import PARTS, Part
from tests.platform import REPO


def _clean_environment() -> dict[str, str]:
    prefixes = tuple(f"{part.env_prefix}_" for part in PARTS)
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


@pytest.mark.parametrize("part", PARTS, ids=lambda p: p.name)
def test_missing_settings_are_named(part: Part) -> None:
    result = subprocess.run(
        [sys.executable, "-m", part.module],
        env=_clean_environment(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"{part.env_prefix}_DATABASE_URL" in result.stderr
    assert f"{part.env_prefix}_NATS_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_wrong_value_is_named() -> None:
    env = {
        **_clean_environment(),
        "PORTFOLIO_DATABASE_URL": "mysql://nope",
        "PORTFOLIO_REDIS_URL": "redis://127.0.0.1:6379/0",
        "PORTFOLIO_NATS_URL": "nats://127.0.0.1:4222",
        "PORTFOLIO_JWKS_URL": "http://127.0.0.1:8000/api/v1/auth/jwks",
        "PORTFOLIO_PORT": "99999",
    }
    result = subprocess.run(
        [sys.executable, "-m", "services.portfolio"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "PORTFOLIO_DATABASE_URL" in result.stderr
    assert "PORTFOLIO_PORT" in result.stderr
    assert "PORTFOLIO_REDIS_URL" not in result.stderr
