"""The short API fuzz kept in CI: schemathesis against the platform's merged OpenAPI.

Every operation of ``/api/v1/openapi.json``, positive and negative data, a fixed seed and
a few examples each, as a fresh admin (so no route stops at 403), against a platform this
test starts for itself: its own Redis namespace (the fuzzer's failed logins must not lock
other tests out) and quotas it cannot reach. It fails on any 5xx, any response that does
not match its documented schema or content type, and any status code the document does
not declare. The long run is a documented command (docs/development.md, "Fuzz the API").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from gateway.demo import DEMO_ACCOUNTS
from shared.jwt import SigningKey
from tests.infra import TestInfra
from tests.platform import start_platform

pytestmark = pytest.mark.e2e

SEED = 20261201
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)
ADMIN = next((name, password) for role, name, password in DEMO_ACCOUNTS if role == "admin")


def _fresh_admin(base_url: str) -> str:
    """A new admin's access token (the fuzzer's changes stay with that user)."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        demo = client.post("/api/v1/auth/token", data={"username": ADMIN[0], "password": ADMIN[1]})
        assert demo.status_code == 200, demo.text
        headers = {"Authorization": f"Bearer {demo.json()['access_token']}"}
        username, password = f"fuzz-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        created = client.post(
            "/api/v1/users",
            headers=headers,
            json={"username": username, "password": password, "role": "admin"},
        )
        assert created.status_code == 201, created.text
        token = client.post("/api/v1/auth/token", data={"username": username, "password": password})
        assert token.status_code == 200, token.text
        access: str = token.json()["access_token"]
        return access


def fuzz_command(base_url: str, token: str, *, max_examples: int, report: Path) -> list[str]:
    """The schemathesis command line (the long run in docs/development.md is this with
    more examples and no time limit)."""
    return [
        str(Path(sys.executable).parent / "st"),
        "run",
        f"{base_url}/api/v1/openapi.json",
        "--checks",
        CHECKS,
        "--mode",
        "all",
        "--seed",
        str(SEED),
        "--max-examples",
        str(max_examples),
        "--phases",
        "examples,coverage,fuzzing",
        # One worker: schemathesis's workers are threads, and this CPython 3.11 keeps the
        # AST constructor's recursion depth in state the threads share, so hypothesis
        # describing strategies in two threads at once failed now and then with "AST
        # constructor recursion depth mismatch" (CPython gh-106905).
        "--workers",
        "1",
        "--no-shrink",
        "--request-timeout",
        "10",
        "--header",
        f"Authorization: Bearer {token}",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--warnings",
        "off",
    ]


def test_the_api_survives_a_short_fuzz(
    seeded: TestInfra, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for quota in ("READ", "WRITE", "PUBLIC", "LOGIN_IP", "LOGIN_USER"):
        monkeypatch.setenv(f"GATEWAY_RATE_LIMIT_{quota}", "1000000/60s")
    key_file = tmp_path / "jwt-signing.pem"
    key_file.write_bytes(SigningKey.generate().to_pem())
    key_file.chmod(0o600)
    platform = start_platform(
        seeded,
        database=seeded.database,
        redis_prefix=f"{seeded.redis_prefix}fuzz:",
        nats_prefix=f"{seeded.nats_prefix}f",
        signing_key=key_file,
        log_dir=tmp_path,
    )
    try:
        token = _fresh_admin(platform.gateway_url)
        report = tmp_path / "schemathesis.json"
        run = subprocess.run(
            fuzz_command(platform.gateway_url, token, max_examples=4, report=report),
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            # The fuzzer is not ours to measure: without coverage's subprocess hook.
            env={k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_PROCESS")},
        )
    finally:
        platform.stop()
    summary = run.stdout[-6000:]
    assert run.returncode == 0, summary
    outcome = json.loads(report.read_text())
    operations = outcome["operations"]
    assert operations["tested"] == operations["total"] > 0, operations  # every operation
    assert operations["errored"] == 0 and not outcome["errors"], summary
