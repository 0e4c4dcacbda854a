"""The pages a browser gets from the gateway: the console at ``/`` and the API's Swagger
UI at ``/docs``, both from the static files in ``gateway/console/`` (docs/console.md).

The files are read once, when the app is made. Every asset is served under
``/assets/<build>/...``, where ``<build>`` is a hash of all the files: an asset's URL
changes whenever any file does, so assets are cached for a year (``immutable``), while the
two pages (which name the build) are revalidated on every load. Another build's URL is a
404: a page of an older build is reloaded rather than mixed with newer modules.

Every page and asset carries :data:`CONTENT_SECURITY_POLICY` (set by
:class:`gateway.pipeline.respond.SecurityHeadersMiddleware`): scripts, styles, images,
fonts and connections (WebSockets included) from this origin only, and no inline script
or style. So nothing on these pages comes from a CDN, and the API docs work offline.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.responses import Response

from shared.errors import NotFoundError

CONSOLE_DIR = Path(__file__).resolve().parent / "console"
ASSETS = "/assets/"
PAGES = {"/": "index.html", "/docs": "docs.html"}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none';"
    " form-action 'self'; frame-ancestors 'none'"
)
_BUILD_MARK = b"{{build}}"
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
_IMMUTABLE = "public, max-age=31536000, immutable"
_REVALIDATE = "no-cache"


def is_page(path: str) -> bool:
    """Whether ``path`` is one of these pages or assets (they get the pages' policy)."""
    return path in PAGES or path.startswith(ASSETS)


@dataclass
class StaticFile:
    body: bytes
    media_type: str
    etag: str
    _gzipped: bytes | None = field(default=None, repr=False)

    def gzipped(self) -> bytes:
        """The body gzipped, made on first use and kept (assets are requested again by
        every new browser; compressing the Swagger UI bundle each time costs ~50 ms)."""
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, compresslevel=6, mtime=0)
        return self._gzipped


@dataclass(frozen=True)
class ConsoleFiles:
    """The console's files, read from ``directory``: assets by path, and the pages."""

    build: str
    assets: dict[str, StaticFile]
    pages: dict[str, StaticFile]

    @classmethod
    def load(cls, directory: Path = CONSOLE_DIR) -> ConsoleFiles:
        files = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix in _MEDIA_TYPES)
        digest = hashlib.sha256()
        contents = {}
        for path in files:
            relative = path.relative_to(directory).as_posix()
            body = path.read_bytes()
            digest.update(relative.encode() + b"\0" + body + b"\0")
            contents[relative] = body
        build = digest.hexdigest()[:16]
        pages = {
            url: _static(name, contents[name].replace(_BUILD_MARK, build.encode()))
            for url, name in PAGES.items()
        }
        assets = {
            name: _static(name, body)
            for name, body in contents.items()
            if name not in PAGES.values()
        }
        return cls(build, assets, pages)

    def asset_path(self, name: str) -> str:
        return f"{ASSETS}{self.build}/{name}"


def _static(name: str, body: bytes) -> StaticFile:
    media_type = _MEDIA_TYPES[Path(name).suffix]
    return StaticFile(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def _answer(request: Request, file: StaticFile, cache_control: str) -> Response:
    headers = {"Cache-Control": cache_control, "ETag": file.etag, "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == file.etag:
        return Response(status_code=304, headers=headers)
    body = file.body
    if len(body) > 1024 and "gzip" in request.headers.get("accept-encoding", ""):
        body = file.gzipped()
        headers["Content-Encoding"] = "gzip"  # the gzip middleware leaves it alone then
    return Response(body, media_type=file.media_type, headers=headers)


router = APIRouter(include_in_schema=False)


def _files(request: Request) -> ConsoleFiles:
    files: ConsoleFiles = request.app.state.console_files
    return files


@router.api_route("/", methods=["GET", "HEAD"])
async def console(request: Request) -> Response:
    """The console: one page; its views are URL fragments (``/#/stocks/ACME``)."""
    return _answer(request, _files(request).pages["/"], _REVALIDATE)


@router.api_route("/docs", methods=["GET", "HEAD"])
async def swagger_ui(request: Request) -> Response:
    """Swagger UI over the platform's document (``/api/v1/openapi.json``)."""
    return _answer(request, _files(request).pages["/docs"], _REVALIDATE)


@router.api_route("/assets/{build}/{name:path}", methods=["GET", "HEAD"])
async def asset(request: Request, build: str, name: str) -> Response:
    files = _files(request)
    file = files.assets.get(name)
    if build != files.build or file is None:
        raise NotFoundError(f"No asset {name} in build {build}.")
    return _answer(request, file, _IMMUTABLE)
