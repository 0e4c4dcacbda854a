"""PostgreSQL, Redis and NATS servers of the test's own, for tests that stop and restart
them (the fault tests). Never the machine's shared servers: each server here runs from a
temporary folder on a free port, is started with the launcher's own code
(:mod:`bourse.infra`, so the embedded path is exercised too) and is stopped at the end.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bourse import infra
from bourse.home import Home
from bourse.parts import PARTS
from shared.db import ensure_database, ensure_service_schema, migrate, open_connection, service_dsn
from tests.platform import free_port

DATABASE = "bourse"


@dataclass
class PrivateInfra:
    """Three servers of one test; :meth:`stop` and :meth:`start` take one down and up."""

    home: Home
    ports: dict[str, int]

    @property
    def admin_url(self) -> str:
        return infra.embedded_url(infra.POSTGRES, self.ports[infra.POSTGRES])

    @property
    def redis_url(self) -> str:
        return infra.embedded_url(infra.REDIS, self.ports[infra.REDIS])

    @property
    def nats_url(self) -> str:
        return infra.embedded_url(infra.NATS, self.ports[infra.NATS])

    def start(self, kind: str) -> None:
        infra.start_embedded(kind, self.home, self.ports[kind], report=lambda _: None)

    def stop(self, kind: str) -> None:
        infra.stop_embedded(kind, self.home)

    def stop_all(self) -> None:
        infra.stop_all_embedded(self.home, report=lambda _: None)


@contextmanager
def private_infra() -> Iterator[PrivateInfra]:
    """The three servers, started in a new temporary folder; stopped and removed when the
    block ends.

    Not under pytest's ``tmp_path``: run as root, PostgreSQL runs as an unprivileged user
    that must traverse every folder above its data, and pytest makes its base folder
    private again whenever any session starts.
    """
    root = Path(tempfile.mkdtemp(prefix="bourse-infra-"))
    root.chmod(0o711)
    servers = PrivateInfra(Home(root), {kind: free_port() for kind in infra.KINDS})
    try:
        for kind in infra.KINDS:
            servers.start(kind)
        yield servers
    finally:
        try:
            servers.stop_all()
        finally:
            shutil.rmtree(root, ignore_errors=True)


async def provision(servers: PrivateInfra, database: str = DATABASE) -> None:
    """Every part's role, schema, migrations and demo data in ``database``, as
    ``bourse up --demo`` would."""
    await ensure_database(servers.admin_url, database)
    for part in PARTS:
        await ensure_service_schema(
            servers.admin_url, database=database, role=part.db_role, schema=part.schema
        )
        conn = await open_connection(
            service_dsn(servers.admin_url, database=database, role=part.db_role)
        )
        try:
            app = importlib.import_module(f"{part.module}.app")
            await migrate(conn, part.schema, app.migrations())
            try:
                demo = importlib.import_module(f"{part.module}.demo")
            except ModuleNotFoundError:
                continue
            await demo.seed_demo(conn)
        finally:
            await conn.close()
