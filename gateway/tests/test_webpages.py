"""The console's and the docs' static files as the gateway serves them (in process, the
real app): pages revalidated, assets under the build's hash cached for a year, the pages'
CSP and the API's apart, gzip, 304s, every referenced file and every module import
present, and the vendored libraries exactly as the lock's packages gave them."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.webpages import CONSOLE_DIR, CONTENT_SECURITY_POLICY, ConsoleFiles
from tests.infra import TestInfra
from tests.inprocess import InProcessApp, running_app

_REFERENCE = re.compile(r'(?:src|href)="(/assets/[^"]+)"')
_IMPORT = re.compile(r'(?:from|import)\s*"(\.{1,2}/[^"]+)"')


@pytest.fixture(scope="module")
async def gateway(
    infra: TestInfra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessApp]:
    async with running_app("gateway", infra, tmp_path_factory.mktemp("gw-pages")) as running:
        yield running


async def test_pages_are_revalidated_and_name_the_build(gateway: InProcessApp) -> None:
    files: ConsoleFiles = gateway.app.state.console_files
    for path in ("/", "/docs"):
        page = await gateway.client.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["cache-control"] == "no-cache"
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert page.headers["x-frame-options"] == "DENY"
        assert "{{build}}" not in page.text
        references = _REFERENCE.findall(page.text)
        assert references and all(r.startswith(f"/assets/{files.build}/") for r in references)
        assert "<script>" not in page.text and "style=" not in page.text  # nothing inline
        again = await gateway.client.get(path, headers={"If-None-Match": page.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
    docs = await gateway.client.get("/docs")
    assert "swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text.lower()


async def test_every_referenced_asset_is_served_immutable(gateway: InProcessApp) -> None:
    files: ConsoleFiles = gateway.app.state.console_files
    for path in ("/", "/docs"):
        page = await gateway.client.get(path)
        for reference in _REFERENCE.findall(page.text):
            asset = await gateway.client.get(reference)
            assert asset.status_code == 200, reference
            assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert asset.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            name = reference.removeprefix(f"/assets/{files.build}/")
            assert asset.content == (CONSOLE_DIR / name).read_bytes()
            if name.endswith((".js", ".mjs")):
                assert asset.headers["content-type"] == "text/javascript; charset=utf-8"


def test_every_module_import_resolves_to_a_served_file() -> None:
    files = ConsoleFiles.load()
    modules = [name for name in files.assets if name.startswith("app/")]
    assert "app/main.js" in modules and len(modules) > 10
    for name in modules:
        text = files.assets[name].body.decode()
        for target in _IMPORT.findall(text):
            resolved = (Path(name).parent / target).as_posix()
            parts: list[str] = []
            for part in resolved.split("/"):
                if part == "..":
                    parts.pop()
                elif part != ".":
                    parts.append(part)
            assert "/".join(parts) in files.assets, f"{name} imports {target}"


async def test_other_builds_and_unknown_files_are_404(gateway: InProcessApp) -> None:
    files: ConsoleFiles = gateway.app.state.console_files
    for path in (
        "/assets/0000000000000000/app/main.js",
        f"/assets/{files.build}/app/missing.js",
        f"/assets/{files.build}/vendor/VERSIONS",  # not a served kind of file
        f"/assets/{files.build}/%2e%2e/webpages.py",  # listed files only, never a path
    ):
        answer = await gateway.client.get(path)
        assert answer.status_code == 404, path
        assert answer.json()["error_code"] == "NOT_FOUND"


async def test_gzip_for_clients_that_accept_it(gateway: InProcessApp) -> None:
    files: ConsoleFiles = gateway.app.state.console_files
    path = f"/assets/{files.build}/vendor/swagger-ui-dist/swagger-ui-bundle.js"
    plain = await gateway.client.get(path, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    zipped = await gateway.client.get(path, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < len(plain.content) / 3
    assert zipped.content == plain.content  # httpx decoded it
    assert zipped.headers["vary"] == "Accept-Encoding"


async def test_api_answers_keep_their_own_policy(gateway: InProcessApp) -> None:
    health = await gateway.client.get("/api/v1/health")
    assert health.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


def test_the_build_changes_with_any_file(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "index.html").write_text('<script src="/assets/{{build}}/app/main.js"></script>')
    (tmp_path / "docs.html").write_text("docs")
    (tmp_path / "app" / "main.js").write_text("one")
    (tmp_path / "notes.md").write_text("not served")
    first = ConsoleFiles.load(tmp_path)
    assert set(first.assets) == {"app/main.js"}
    assert (
        first.pages["/"].body
        == f'<script src="/assets/{first.build}/app/main.js"></script>'.encode()
    )
    (tmp_path / "app" / "main.js").write_text("two")
    second = ConsoleFiles.load(tmp_path)
    assert second.build != first.build and second.pages["/"].etag != first.pages["/"].etag
    assert gzip.decompress(second.assets["app/main.js"].gzipped()) == b"two"


def test_vendored_files_are_what_the_lock_gave() -> None:
    """Nobody edited a vendored file by hand: each matches the sum scripts/vendor-console
    recorded, and the versions are the lock's pins (the lock's sha512 integrity is checked
    by npm when the script runs; `scripts/vendor-console --check` redoes it all)."""
    vendor = CONSOLE_DIR / "vendor"
    sums = {}
    for line in (vendor / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        sums[name.removeprefix("./")] = digest
    present = {
        p.relative_to(vendor).as_posix()
        for p in vendor.rglob("*")
        if p.is_file() and p.name not in {"SHA256SUMS", "VERSIONS"}
    }
    assert present == set(sums)
    for name, digest in sums.items():
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
    lock_dir = CONSOLE_DIR.parent.parent / "scripts" / "console-vendor"
    pins = json.loads((lock_dir / "package.json").read_text())["dependencies"]
    versions = dict(line.split() for line in (vendor / "VERSIONS").read_text().splitlines())
    assert versions == pins
    lock = json.loads((lock_dir / "package-lock.json").read_text())["packages"]
    for package, version in pins.items():
        assert lock[f"node_modules/{package}"]["version"] == version
        assert lock[f"node_modules/{package}"]["integrity"].startswith("sha512-")
