"""Where a test session's infrastructure is (see the root ``conftest.py``)."""

from __future__ import annotations

from dataclasses import dataclass

import nats

from bourse.parts import Part
from shared.db import service_dsn


@dataclass(frozen=True)
class TestInfra:
    """Where this test session's infrastructure is, and its private namespaces."""

    __test__ = False

    run_id: str
    admin_url: str  # superuser DSN pointing at the session database
    admin_server_url: str  # superuser DSN as given (maintenance database)
    database: str
    redis_url: str
    redis_prefix: str
    nats_url: str
    nats_prefix: str

    def dsn_for(self, part: Part) -> str:
        """The DSN a part uses: its own role, on the session database."""
        return service_dsn(self.admin_server_url, database=self.database, role=part.db_role)


async def delete_streams(nats_url: str, prefix: str) -> list[str]:
    """Delete every JetStream stream under ``prefix`` (a session's, and the sub-prefixes
    its tests make from it) with its consumers; return their names.

    The parts declare their streams (``<PREFIX>_MARKET`` ...) when they start: without
    this, every session left them in the server's store, which on a developer's machine
    is the development platform's own NATS.
    """
    wire = prefix.upper()
    client = await nats.connect(nats_url, connect_timeout=2, max_reconnect_attempts=0)
    try:
        jsm = client.jsm()
        names = [
            info.config.name
            for info in await jsm.streams_info()
            if info.config.name and info.config.name.startswith(wire)
        ]
        for name in names:
            await jsm.delete_stream(name)
        return names
    finally:
        await client.close()
