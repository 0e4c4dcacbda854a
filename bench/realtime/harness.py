"""What the realtime benchmark runs against, started and stopped by it:

- its own nats-server (the venv's, 2.15+) with a WebSocket listener on loopback (no TLS),
  so the ceiling is measured on the same server that feeds the realtime node;
- a throw-away PostgreSQL database with the realtime role and schema;
- a JWKS endpoint for a fresh Ed25519 key, so the bench can mint one token per client;
- one realtime node (``python -m services.realtime``), as in production.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from aiohttp import web

from shared.db import drop_database, ensure_database, ensure_service_schema, service_dsn
from shared.jwt import SigningKey, TokenSigner, jwks_document

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Nats:
    port: int
    ws_port: int
    process: subprocess.Popen[bytes]
    workdir: Path

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


def start_nats(workdir: Path) -> Nats:
    port, ws_port, http_port = free_port(), free_port(), free_port()
    config = workdir / "nats.conf"
    config.write_text(
        f"""
listen: 127.0.0.1:{port}
http: 127.0.0.1:{http_port}
max_payload: 1MB
jetstream {{ store_dir: "{workdir / "js"}" }}
websocket {{
  listen: "127.0.0.1:{ws_port}"
  no_tls: true
  compression: false
}}
"""
    )
    process = subprocess.Popen(
        [str(VENV_BIN / "nats-server"), "-c", str(config)],
        stdout=(workdir / "nats.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", ws_port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    return Nats(port, ws_port, process, workdir)


@dataclass
class Jwks:
    signer: TokenSigner
    url: str
    runner: web.AppRunner

    def token(self, subject: str, role: str = "viewer") -> str:
        return self.signer.issue(subject, [role], ttl_seconds=3600)


async def start_jwks() -> Jwks:
    key = SigningKey.generate()
    body = orjson.dumps(jwks_document([key.public_key]))

    async def jwks(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/jwks", jwks)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    signer = TokenSigner(key, issuer="bourse", audience="bourse-api", ttl_seconds=3600)
    return Jwks(signer, f"http://127.0.0.1:{port}/jwks", runner)


@dataclass
class Node:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Bench:
    """Everything started for one benchmark run; :meth:`close` stops it all."""

    workdir: Path
    admin_dsn: str
    database: str
    nats: Nats
    jwks: Jwks
    nodes: list[Node] = field(default_factory=list)

    async def start_node(self, **settings: str) -> Node:
        port = free_port()
        env = {
            **os.environ,
            "REALTIME_PORT": str(port),
            "REALTIME_DATABASE_URL": service_dsn(
                self.admin_dsn, database=self.database, role="bourse_realtime"
            ),
            "REALTIME_REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
            "REALTIME_REDIS_PREFIX": f"bench:{self.database}:",
            "REALTIME_NATS_URL": self.nats.url,
            "REALTIME_JWKS_URL": self.jwks.url,
            "REALTIME_LOG_LEVEL": "WARNING",
            **{f"REALTIME_{k.upper()}": v for k, v in settings.items()},
        }
        log = self.workdir / f"realtime-{port}.log"
        process = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "services.realtime"],
            env=env,
            cwd=REPO,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        node = Node(port, process, log)
        async with httpx.AsyncClient(timeout=1.0) as client:
            for _ in range(300):
                if process.poll() is not None:
                    raise RuntimeError(f"realtime exited:\n{log.read_text()[-3000:]}")
                try:
                    if (await client.get(node.url + "/ready")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"realtime not ready:\n{log.read_text()[-3000:]}")
        self.nodes.append(node)
        return node

    def stop_node(self, node: Node) -> None:
        node.process.terminate()
        try:
            node.process.wait(15)
        except subprocess.TimeoutExpired:
            node.process.kill()
        self.nodes.remove(node)

    async def close(self) -> None:
        for node in list(self.nodes):
            self.stop_node(node)
        self.nats.process.terminate()
        self.nats.process.wait(10)
        await self.jwks.runner.cleanup()
        await drop_database(self.admin_dsn, self.database)


async def open_bench() -> Bench:
    admin = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    database = f"bourse_bench_{uuid.uuid4().hex[:8]}"
    await ensure_database(admin, database)
    await ensure_service_schema(admin, database=database, role="bourse_realtime", schema="realtime")
    workdir = Path(tempfile.mkdtemp(prefix="bench-realtime-"))
    nats = start_nats(workdir)
    jwks = await start_jwks()
    return Bench(workdir, admin, database, nats, jwks)
