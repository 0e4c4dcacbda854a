"""Small helpers for the launcher's tests: free ports and a home in a temporary folder."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

from bourse.home import Home
from bourse.infra import KINDS, InfraSettings
from bourse.parts import Part


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def closed_url(kind: str) -> str:
    port = free_port()
    return {
        "postgres": f"postgresql://postgres@127.0.0.1:{port}/postgres",
        "redis": f"redis://127.0.0.1:{port}/0",
        "nats": f"nats://127.0.0.1:{port}",
    }[kind]


def isolated_settings(root: Path) -> InfraSettings:
    """Nothing from the environment, nothing local: every server will be embedded,
    on free ports, with its data under ``root``."""
    return InfraSettings(
        home=Home(root),
        env_urls={},
        local_urls={kind: closed_url(kind) for kind in KINDS},
        ports={kind: free_port() for kind in KINDS},
        environ={},
    )


_SERVER = """
import os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

if os.environ.get("STANDIN_MODE") == "crash":
    sys.exit("stand-in: refusing to start")
if os.environ.get("STANDIN_MODE") == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ.get("STANDIN_GREETING", "").encode()
        self.send_response(200 if self.path in ("/ready", "/greeting") else 404)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

print("stand-in listening", flush=True)
HTTPServer(("127.0.0.1", int(os.environ["STANDIN_PORT"])), Handler).serve_forever()
"""


def standin(tmp_path: Path) -> tuple[Part, dict[str, str], int]:
    """A stand-in part: a tiny HTTP server (``/ready``, ``/greeting``) as a package in
    ``tmp_path``; ``STANDIN_MODE=crash`` makes it exit at once, ``stubborn`` ignore SIGTERM."""
    package = tmp_path / "src" / "standin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(textwrap.dedent(_SERVER))
    port = free_port()
    part = Part(
        name="standin",
        module="standin",
        env_prefix="STANDIN",
        schema="standin",
        db_role="bourse_standin",
        default_port=port,
        migrations_package="standin.migrations",
    )
    env = {"PYTHONPATH": str(tmp_path / "src"), "STANDIN_PORT": str(port)}
    return part, env, port
