"""Small helpers for the launcher's tests: free ports and a home in a temporary folder."""

from __future__ import annotations

import socket
from pathlib import Path

from bourse.home import Home
from bourse.infra import KINDS, InfraSettings


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
